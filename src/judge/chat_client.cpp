#include "judge/chat_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/timer.h"
#include "core/version.h"

namespace xwin {

using nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One distinct request and the state of its attempts.
struct Task {
  std::string key, body;
  size_t replay = 0;  // journal replies consumed
  int tries = 0;      // failed attempts so far (timeouts, 5xx, 429, ...)
  int reasks = 0;     // unusable replies so far
  bool reasking = false;
  std::string response, retry_after, retry_after_ms;
  ChatReply result;
  bool resolved = false;
};

size_t on_body(char* data, size_t size, size_t n, void* user) {
  static_cast<Task*>(user)->response.append(data, size * n);
  return size * n;
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  std::string h(data, size * n);
  std::string lower = h;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  Task* t = static_cast<Task*>(user);
  auto value = [&](size_t from) {
    std::string v = h.substr(from);
    v.erase(0, v.find_first_not_of(" \t"));
    v.erase(v.find_last_not_of(" \t\r\n") + 1);
    return v;
  };
  if (lower.rfind("retry-after:", 0) == 0) t->retry_after = value(12);
  if (lower.rfind("retry-after-ms:", 0) == 0) t->retry_after_ms = value(15);
  return size * n;
}

// Errors of the connection or the transfer that a later attempt may not meet.
bool transient(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    default:
      return false;
  }
}

// The server's message: error.message of a JSON error body, else the start of the body.
std::string server_message(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string())
      return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  std::string s = body.substr(0, 200);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s.empty() ? "(empty body)" : s;
}

// Seconds a 429 asks us to wait (Retry-After: seconds or an HTTP date; retry-after-ms), or -1.
double retry_after_s(const Task& t) {
  if (!t.retry_after_ms.empty()) return std::atof(t.retry_after_ms.c_str()) / 1000.0;
  if (t.retry_after.empty()) return -1;
  char* end = nullptr;
  const double s = std::strtod(t.retry_after.c_str(), &end);
  if (end && *end == '\0') return std::max(0.0, s);
  const time_t when = curl_getdate(t.retry_after.c_str(), nullptr);
  return when < 0 ? -1 : std::max(0.0, (double)(when - std::time(nullptr)));
}

// The multi handle and its transfers, cleaned up however complete() ends.
struct Transfers {
  CURLM* multi = curl_multi_init();
  curl_slist* headers = nullptr;
  std::map<CURL*, size_t> active;  // easy handle -> task
  ~Transfers() {
    for (auto& [e, t] : active) {
      curl_multi_remove_handle(multi, e);
      curl_easy_cleanup(e);
    }
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
  }
};

}  // namespace

ChatClient::ChatClient(ChatClientOptions o) : o_(std::move(o)) {
  static const bool curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  require(curl_ok, "judge: libcurl failed to initialise");
  require(o_.in_flight >= 1, "--judge_in_flight must be at least 1");
  require(o_.timeout_s > 0, "--judge_timeout must be positive");
  require(o_.max_retries >= 0 && o_.reask >= 0, "--judge_retries and --judge_reask must be >= 0");
  require(!o_.url.empty() && !o_.model.empty(), "judge: give --judge_url and --judge_model");
  endpoint_ = o_.url;
  const std::string suffix = "/chat/completions";
  if (endpoint_.size() < suffix.size() ||
      endpoint_.compare(endpoint_.size() - suffix.size(), suffix.size(), suffix) != 0) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    endpoint_ += suffix;
  }
  if (const char* k = o_.key_env.empty() ? nullptr : std::getenv(o_.key_env.c_str())) key_ = k;
  if (key_.empty())
    log0("judge: $%s is empty or unset: no Authorization header (fine for a local server)",
         o_.key_env.c_str());
  journal_ = std::make_unique<Journal>(o_.journal);
  if (journal_->size() > 0)
    log0("judge: journal %s holds %zu replies; those requests are not sent again",
         o_.journal.c_str(), journal_->size());
}

ChatClient::~ChatClient() = default;

json ChatClient::body(const json& messages) const {
  return {{"model", o_.model},
          {"messages", messages},
          {"temperature", o_.temperature},
          {"max_tokens", o_.max_tokens}};
}

std::string ChatClient::redact(std::string text) const {
  if (key_.empty()) return text;
  for (size_t at = text.find(key_); at != std::string::npos; at = text.find(key_, at))
    text.replace(at, key_.size(), "***");
  return text;
}

double ChatClient::cost() const {
  return (stats_.prompt_tokens * o_.price_in + stats_.completion_tokens * o_.price_out) / 1000.0;
}

double ChatClient::saved_cost() const {
  return (stats_.saved_prompt_tokens * o_.price_in +
          stats_.saved_completion_tokens * o_.price_out) /
         1000.0;
}

std::string ChatClient::summary() const {
  char buf[400];
  std::snprintf(buf, sizeof buf,
                "%lld HTTP requests (%lld retries, %lld re-asks), %lld replies from the journal, "
                "%lld failed; %lld prompt + %lld completion tokens, $%.4f (journal saved $%.4f); "
                "%.1f requests/s",
                (long long)stats_.requests, (long long)stats_.retries, (long long)stats_.reasks,
                (long long)stats_.replayed, (long long)stats_.failed,
                (long long)stats_.prompt_tokens, (long long)stats_.completion_tokens, cost(),
                saved_cost(), stats_.requests / std::max(stats_.seconds, 1e-9));
  return buf;
}

std::vector<ChatReply> ChatClient::complete(const std::vector<json>& messages,
                                            const std::function<bool(const std::string&)>& accept) {
  Timer timer;
  // Distinct requests; duplicates share the reply.
  std::vector<Task> tasks;
  std::vector<size_t> owner(messages.size());
  std::unordered_map<std::string, size_t> by_key;
  for (size_t i = 0; i < messages.size(); i++) {
    const json b = body(messages[i]);
    const std::string key = request_key(b);
    const auto [it, fresh] = by_key.emplace(key, tasks.size());
    if (fresh) {
      tasks.emplace_back();
      tasks.back().key = key;
      tasks.back().body = b.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    owner[i] = it->second;
  }
  size_t resolved = 0;
  auto resolve = [&](Task& t, bool ok, const std::string& error) {
    t.resolved = true, t.result.ok = ok, t.result.error = redact(error);
    stats_.failed += !ok;
    resolved++;
  };
  // A reply arrived (from the journal or the wire): accepted, asked again, or given up on.
  auto take = [&](Task& t, const std::string& content) {
    t.result.content = content;
    if (!accept || accept(content)) return resolve(t, true, ""), true;
    if (++t.reasks > o_.reask)
      return resolve(t, false, "no usable reply in " + std::to_string(t.reasks) + " replies"), true;
    stats_.reasks++;
    t.reasking = true;
    return false;
  };
  auto replay = [&](Task& t) {
    const std::vector<JournalEntry>* js = journal_->find(t.key);
    while (js && t.replay < js->size()) {
      const JournalEntry& e = (*js)[t.replay++];
      stats_.replayed++;
      stats_.saved_prompt_tokens += e.prompt_tokens;
      stats_.saved_completion_tokens += e.completion_tokens;
      if (take(t, e.reply)) return true;
    }
    return false;
  };

  std::deque<size_t> ready;
  std::multimap<double, size_t> delayed;  // due time -> task
  for (size_t i = 0; i < tasks.size(); i++)
    if (!replay(tasks[i])) ready.push_back(i);

  Transfers tr;
  tr.headers = curl_slist_append(tr.headers, "Content-Type: application/json");
  tr.headers = curl_slist_append(tr.headers, "Expect:");
  if (!key_.empty())
    tr.headers = curl_slist_append(tr.headers, ("Authorization: Bearer " + key_).c_str());
  std::mt19937_64 jitter(std::random_device{}());
  std::uniform_real_distribution<double> u(0.5, 1.5);

  auto retry = [&](size_t i, const std::string& error, double delay) {
    Task& t = tasks[i];
    if (++t.tries > o_.max_retries)
      return resolve(t, false, "gave up after " + std::to_string(t.tries) + " attempts: " + error);
    if (delay < 0)
      delay = std::min(o_.max_backoff_s, o_.backoff_s * std::pow(2.0, t.tries - 1)) * u(jitter);
    delayed.emplace(now_s() + delay, i);
  };
  auto start = [&](size_t i) {
    Task& t = tasks[i];
    t.response.clear(), t.retry_after.clear(), t.retry_after_ms.clear();
    CURL* e = curl_easy_init();
    require(e != nullptr, "judge: curl_easy_init failed");
    curl_easy_setopt(e, CURLOPT_URL, endpoint_.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t.body.size());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, tr.headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o_.timeout_s * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(std::min(o_.timeout_s, 30.0) * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "xwin/" XWIN_VERSION);
    curl_multi_add_handle(tr.multi, e);
    tr.active[e] = i;
    stats_.requests++, t.result.http_requests++;
    stats_.retries += t.tries > 0 && !t.reasking;
    t.reasking = false;
  };
  auto finish = [&](size_t i, CURLcode rc, long status) {
    Task& t = tasks[i];
    if (rc != CURLE_OK) {
      const std::string what = std::string(curl_easy_strerror(rc)) + " (" + endpoint_ + ")";
      require(transient(rc), "judge: ", redact(what), "; not retried: check --judge_url");
      return retry(i, what, -1);
    }
    const std::string msg = "HTTP " + std::to_string(status) + ": " + server_message(t.response);
    if (status == 429) return retry(i, msg, retry_after_s(t));
    if (status >= 500 || status == 408) return retry(i, msg, -1);
    require(status != 401 && status != 403 && status != 404, "judge: ", redact(msg), " from ",
            endpoint_, "; every request would fail the same way: check the key in $", o_.key_env,
            ", --judge_model '", o_.model, "' and --judge_url");
    if (status != 200) {
      log_error("judge: request %s: %s (not retried)", t.key.substr(0, 12).c_str(),
                redact(msg).c_str());
      return resolve(t, false, msg + " (not retried)");
    }
    const json j = json::parse(t.response, nullptr, false);
    const json* content = nullptr;
    if (j.is_object() && j.contains("choices") && j["choices"].is_array() &&
        !j["choices"].empty() && j["choices"][0].is_object()) {
      const json& c0 = j["choices"][0];
      if (c0.contains("message") && c0["message"].is_object() &&
          c0["message"].contains("content") && c0["message"]["content"].is_string())
        content = &c0["message"]["content"];
    }
    if (!content) return retry(i, "malformed reply: " + server_message(t.response), -1);
    JournalEntry e;
    e.reply = content->get<std::string>();
    if (j.contains("usage") && j["usage"].is_object()) {
      e.prompt_tokens = j["usage"].value("prompt_tokens", (int64_t)0);
      e.completion_tokens = j["usage"].value("completion_tokens", (int64_t)0);
    }
    stats_.prompt_tokens += e.prompt_tokens, stats_.completion_tokens += e.completion_tokens;
    journal_->append(t.key, e);
    t.replay++;
    if (!take(t, e.reply)) ready.push_back(i);
  };

  double last_log = now_s();
  bool stopping = false;
  while (resolved < tasks.size()) {
    // Preempted (a caller installed core/signals.h's handlers and SIGUSR1/SIGTERM came): start
    // nothing new, let the requests in flight finish (their replies reach the journal), stop.
    if (!stopping && preemption_requested()) {
      stopping = true;
      log0(
          "judge: preempted at %zu/%zu replies; waiting for %zu requests in flight, then "
          "stopping (the journal keeps every reply; rerun to resume)",
          resolved, tasks.size(), tr.active.size());
    }
    if (stopping && tr.active.empty()) {
      stats_.seconds += timer.seconds();
      throw Preempted{(long long)resolved};
    }
    for (double now = now_s(); !delayed.empty() && delayed.begin()->first <= now;)
      ready.push_back(delayed.begin()->second), delayed.erase(delayed.begin());
    while (!stopping && (int)tr.active.size() < o_.in_flight && !ready.empty())
      start(ready.front()), ready.pop_front();
    int running = 0, queued = 0;
    curl_multi_perform(tr.multi, &running);
    while (CURLMsg* m = curl_multi_info_read(tr.multi, &queued)) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL* e = m->easy_handle;
      const CURLcode rc = m->data.result;
      long status = 0;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      const size_t i = tr.active.at(e);
      curl_multi_remove_handle(tr.multi, e);
      curl_easy_cleanup(e);
      tr.active.erase(e);
      finish(i, rc, status);
    }
    if (o_.progress_s > 0 && now_s() - last_log > o_.progress_s) {
      last_log = now_s();
      log0("judge: %zu/%zu replies | %lld requests, %.1f/s | %lld retries | $%.4f", resolved,
           tasks.size(), (long long)stats_.requests,
           stats_.requests / std::max(timer.seconds(), 1e-9), (long long)stats_.retries, cost());
    }
    if (resolved == tasks.size()) break;
    int wait_ms = 200;
    if (!stopping && (int)tr.active.size() < o_.in_flight && !ready.empty()) wait_ms = 0;
    if (!delayed.empty())
      wait_ms = std::min(wait_ms, (int)std::max(0.0, (delayed.begin()->first - now_s()) * 1000));
    curl_multi_poll(tr.multi, nullptr, 0, wait_ms, nullptr);
  }
  stats_.seconds += timer.seconds();
  std::vector<ChatReply> out(messages.size());
  for (size_t i = 0; i < messages.size(); i++) out[i] = tasks[owner[i]].result;
  return out;
}

}  // namespace xwin
