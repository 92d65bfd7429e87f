#include "judge/http_judge.h"

#include "core/error.h"

namespace xwin {

using nlohmann::json;
namespace po = boost::program_options;

json pair_messages(const JudgePrompt& single, const JudgePrompt& multi, const PairQuestion& q,
                   bool swapped) {
  std::vector<const Turn*> turns;  // without system turns
  for (const Turn& t : q.prompt)
    if (t.role != Role::System) turns.push_back(&t);
  require(!turns.empty() && turns.back()->role == Role::User,
          "judge: a question must end with a user turn");
  const std::string& a = swapped ? q.b : q.a;
  const std::string& b = swapped ? q.a : q.b;
  if (turns.size() == 1)
    return judge_messages(single, {{"question", turns[0]->text}, {"answer_a", a}, {"answer_b", b}});
  if (turns.size() == 3)
    return judge_messages(multi, {{"question_1", turns[0]->text},
                                  {"answer_a_1", turns[1]->text},
                                  {"answer_b_1", turns[1]->text},
                                  {"question_2", turns[2]->text},
                                  {"answer_a_2", a},
                                  {"answer_b_2", b}});
  std::string transcript;
  for (size_t i = 0; i + 1 < turns.size(); i++)
    transcript += std::string(turns[i]->role == Role::User ? "### User:\n" : "### Assistant:\n") +
                  turns[i]->text + "\n\n";
  transcript += "### User:\n" + turns.back()->text;
  return judge_messages(single, {{"question", transcript}, {"answer_a", a}, {"answer_b", b}});
}

HttpJudge::HttpJudge(const HttpJudgeOptions& o) : o_(o), prompts_(o.prompts), client_(o.client) {
  require(o_.orders == 1 || o_.orders == 2, "--judge_orders must be 1 or 2");
  prompts_.get(o_.prompt);  // fail now, not after generating answers
  prompts_.get(o_.prompt_multi);
}

static Winner swap(Winner w) {
  return w == Winner::A ? Winner::B : w == Winner::B ? Winner::A : w;
}

std::vector<PairVerdict> HttpJudge::judge(const std::vector<PairQuestion>& questions) {
  const JudgePrompt &single = prompts_.get(o_.prompt), &multi = prompts_.get(o_.prompt_multi);
  std::vector<json> msgs;
  for (const PairQuestion& q : questions)
    for (int k = 0; k < o_.orders; k++) msgs.push_back(pair_messages(single, multi, q, k == 1));
  const std::vector<ChatReply> replies = client_.complete(
      msgs, [](const std::string& r) { return parse_pair_verdict(r) != Winner::Failed; });
  std::vector<PairVerdict> out(questions.size());
  for (size_t i = 0; i < questions.size(); i++) {
    Winner w[2] = {Winner::Failed, Winner::Failed};
    std::string why;
    for (int k = 0; k < o_.orders; k++) {
      const ChatReply& r = replies[i * o_.orders + k];
      if (r.ok) w[k] = k == 1 ? swap(parse_pair_verdict(r.content)) : parse_pair_verdict(r.content);
      why += std::string(k == 0 ? "[A first] " : "\n[B first] ") + (r.ok ? r.content : r.error);
    }
    out[i].winner = o_.orders == 2 ? combine_orders(w[0], w[1]) : w[0];
    out[i].explanation = why;
  }
  return out;
}

void add_judge_options(po::options_description& d) {
  const ChatClientOptions c;
  po::options_description j("Judge endpoint (OpenAI-compatible chat completions)");
  j.add_options()("judge_url", po::value<std::string>()->default_value(c.url),
                  "base URL (.../v1) or the full .../chat/completions URL; a local vLLM or "
                  "llama.cpp server works")(
      "judge_model", po::value<std::string>()->default_value(c.model), "model name sent")(
      "judge_key_env", po::value<std::string>()->default_value(c.key_env),
      "environment variable holding the API key (never logged or written)")(
      "judge_prompts", po::value<std::string>()->default_value(""),
      "judge prompt templates, FastChat's judge_prompts.jsonl format (required for HTTP "
      "judging)")("judge_prompt", po::value<std::string>()->default_value("pair-v2"),
                  "pairwise template for single-turn questions")(
      "judge_prompt_multi", po::value<std::string>()->default_value("pair-v2-multi-turn"),
      "pairwise template for two-turn conversations")(
      "judge_orders", po::value<int>()->default_value(2),
      "2: ask both orders (inconsistent verdicts become ties); 1: as given")(
      "judge_in_flight", po::value<int>()->default_value(c.in_flight), "requests in flight")(
      "judge_timeout", po::value<double>()->default_value(c.timeout_s, "120"),
      "seconds per request")("judge_retries", po::value<int>()->default_value(c.max_retries),
                             "retries of a request after timeouts, connection errors, 5xx, 429")(
      "judge_backoff", po::value<double>()->default_value(c.backoff_s, "1"),
      "first retry delay in seconds (doubles per retry, +-50% jitter)")(
      "judge_max_backoff", po::value<double>()->default_value(c.max_backoff_s, "60"),
      "longest retry delay in seconds")("judge_reask", po::value<int>()->default_value(c.reask),
                                        "times an unparseable reply is asked again")(
      "judge_max_tokens", po::value<int>()->default_value(c.max_tokens), "max_tokens sent")(
      "judge_temperature", po::value<double>()->default_value(c.temperature, "0"),
      "temperature sent")("judge_price_in", po::value<double>()->default_value(0.0, "0"),
                          "USD per 1000 prompt tokens (cost report)")(
      "judge_price_out", po::value<double>()->default_value(0.0, "0"),
      "USD per 1000 completion tokens (cost report)")(
      "journal", po::value<std::string>()->default_value(""),
      "append-only journal of judge replies (resume without paying twice); default beside "
      "the output");
  d.add(j);
}

HttpJudgeOptions judge_options(const po::variables_map& vm, const std::string& journal) {
  HttpJudgeOptions o;
  ChatClientOptions& c = o.client;
  c.url = vm["judge_url"].as<std::string>();
  c.model = vm["judge_model"].as<std::string>();
  c.key_env = vm["judge_key_env"].as<std::string>();
  c.in_flight = vm["judge_in_flight"].as<int>();
  c.timeout_s = vm["judge_timeout"].as<double>();
  c.max_retries = vm["judge_retries"].as<int>();
  c.backoff_s = vm["judge_backoff"].as<double>();
  c.max_backoff_s = vm["judge_max_backoff"].as<double>();
  c.reask = vm["judge_reask"].as<int>();
  c.max_tokens = vm["judge_max_tokens"].as<int>();
  c.temperature = vm["judge_temperature"].as<double>();
  c.price_in = vm["judge_price_in"].as<double>();
  c.price_out = vm["judge_price_out"].as<double>();
  c.journal = vm["journal"].as<std::string>().empty() ? journal : vm["journal"].as<std::string>();
  o.prompts = vm["judge_prompts"].as<std::string>();
  require(!o.prompts.empty(),
          "give --judge_prompts: a judge_prompts.jsonl in FastChat's format (e.g. MT-bench's "
          "data/mt_bench/judge_prompts.jsonl)");
  o.prompt = vm["judge_prompt"].as<std::string>();
  o.prompt_multi = vm["judge_prompt_multi"].as<std::string>();
  o.orders = vm["judge_orders"].as<int>();
  return o;
}

}  // namespace xwin
