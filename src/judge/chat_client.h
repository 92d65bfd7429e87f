// A client for OpenAI-compatible /v1/chat/completions endpoints (OpenAI, or vLLM / llama.cpp
// servers on a cluster without internet) over libcurl's multi interface: up to `in_flight`
// requests at once from one thread, each with its own timeout.
//
// Failures, by kind:
//   timeouts, connection errors, truncated bodies, 5xx, 408, malformed JSON replies
//       -> retried after an exponential backoff (backoff_s * 2^k, capped, with +-50% jitter)
//   429 -> retried after the server's Retry-After (seconds or an HTTP date), else the backoff
//   401, 403, 404 -> stop the run: every request would fail the same way (key, model or URL)
//   other 4xx -> that request fails at once, not retried, with the server's message
//   a reply the caller cannot use (no verdict) -> asked again up to `reask` times
// A request that runs out of retries fails with its last error. The API key is read from the
// environment variable named by key_env, sent only in the Authorization header, and scrubbed
// from every message this client prints or returns.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "judge/journal.h"

namespace xwin {

struct ChatClientOptions {
  std::string url = "https://api.openai.com/v1";  // base URL, or the full .../chat/completions
  std::string model = "gpt-4";
  std::string key_env = "OPENAI_API_KEY";  // unset or empty: no Authorization header
  int in_flight = 8;
  double timeout_s = 120;
  int max_retries = 6;
  double backoff_s = 1.0, max_backoff_s = 60.0;
  int reask = 2;
  int max_tokens = 2048;
  double temperature = 0.0;
  double price_in = 0.0, price_out = 0.0;  // USD per 1000 prompt / completion tokens
  std::string journal;                     // "" keeps no journal
  double progress_s = 10.0;                // seconds between progress lines (0: none)
};

struct ChatReply {
  bool ok = false;        // content is a reply the caller accepted
  std::string content;    // the accepted reply, else the last reply received (may be empty)
  std::string error;      // why not ok
  int http_requests = 0;  // sent for it in this run (0: all from the journal)
};

struct ChatStats {
  int64_t requests = 0;  // HTTP requests sent
  int64_t retries = 0;   // of which re-sends after a failure
  int64_t reasks = 0;    // replies asked again because the caller could not use them
  int64_t replayed = 0;  // replies taken from the journal
  int64_t failed = 0;    // requests without an accepted reply
  int64_t prompt_tokens = 0, completion_tokens = 0;              // paid for in this run
  int64_t saved_prompt_tokens = 0, saved_completion_tokens = 0;  // replayed, not paid again
  double seconds = 0;                                            // wall time inside complete()
};

class ChatClient {
 public:
  explicit ChatClient(ChatClientOptions o);
  ~ChatClient();

  // One reply per request (messages: an OpenAI messages array), in order. accept(content) says
  // whether a reply is usable; null accepts any. Identical requests are sent once.
  std::vector<ChatReply> complete(const std::vector<nlohmann::json>& messages,
                                  const std::function<bool(const std::string&)>& accept = {});

  const ChatStats& stats() const { return stats_; }
  const ChatClientOptions& options() const { return o_; }
  double cost() const;        // USD paid in this run
  double saved_cost() const;  // USD the journal saved
  // "N requests (r retries, q re-asks), m from the journal, T tokens, $x, R req/s".
  std::string summary() const;
  // The request body for messages (what is sent, and what the journal key hashes).
  nlohmann::json body(const nlohmann::json& messages) const;
  // text with every occurrence of the API key replaced by "***".
  std::string redact(std::string text) const;

 private:
  struct Impl;
  ChatClientOptions o_;
  std::string key_, endpoint_;
  std::unique_ptr<Journal> journal_;
  ChatStats stats_;
};

}  // namespace xwin
