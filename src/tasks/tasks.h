// Verifiable instruction-following tasks for the embedded demo. Every task has an exact checker,
// so the Xwin-LM method can be run end to end without GPT-4: the oracle (oracle.h) plays the
// annotator, and held-out accuracy is measured, not judged.
//
// Families (tasks::families()) span arithmetic, comparison, sorting, string manipulation,
// counting, unit conversion, format following and two-turn follow-ups. Generation is a pure
// function of (seed, split, index): task i is the same whatever n is asked for. Held-out tasks
// differ from training tasks in their values (a hash of the values puts every instance in exactly
// one split) and in phrasing (each family has phrasings that only the held-out split uses).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "io/chat_template.h"

namespace xwin::tasks {

enum class Split { Train, Heldout };
const char* split_name(Split s);  // "train", "heldout"

struct Task {
  std::string family;  // e.g. "add"
  Split split = Split::Train;
  Conversation prompt;  // ends with a user turn; two-turn tasks include the first exchange
  std::string answer;   // the canonical correct reply, as a demonstration would give it
  nlohmann::json spec;  // what the checker needs (family-specific: operands, target, ...)
};

// What the checker makes of a reply.
struct Grade {
  bool correct = false;  // the reply states the right answer in an accepted form
  double credit = 0.0;   // graded partial credit in [0, 1]: 1 iff correct, else by closeness
  double style = 0.0;    // format and concision in [0, 1]: 1 for a bare or one-sentence answer
};

// The family names, in a fixed order.
const std::vector<std::string>& families();

// n tasks of the split, families in round-robin order (task i has family i mod #families),
// deterministic by (seed, split, i). `only` restricts to the named families (empty: all).
std::vector<Task> generate(size_t n, uint64_t seed, Split split,
                           const std::vector<std::string>& only = {});

// Grades a reply to the task. Accepts reasonable variants of the answer: "42", "42.",
// "The answer is 42.", surrounding whitespace, case where case does not matter.
Grade grade(const Task& t, std::string_view reply);

// A plausible wrong reply in the demonstration's style (an off-by-a-little number, a swapped
// letter, one list item out of place, ...), deterministic by `salt`. The demo mixes some of these
// into the SFT demonstrations, as real SFT data contains mistakes.
std::string wrong_reply(const Task& t, uint64_t salt);

// The reply of a lazy demonstrator who restates part of the question instead of working it out
// (the first operand, the smaller number, the list as given, the word unchanged, the word's
// length as a count, the value unconverted, the first turn's answer again). A systematic mistake,
// unlike wrong_reply's scattered ones: a model that learns it makes it confidently, and the
// demo's reward model has something consistent to learn to reject. Never correct.
std::string lazy_reply(const Task& t);

// The reply of an unhelpful demonstrator who declines to answer ("I am not sure.", ...), one of
// a few phrasings chosen by `salt`. Never correct, no partial credit for numbers; the mistake
// real SFT data has most of, and the one preference training most visibly removes.
std::string unhelpful_reply(const Task& t, uint64_t salt);

// The reply of a hesitant demonstrator who gives the answer and then a second guess ("42, or
// maybe 43"): it commits to no answer, so it is never correct, and a numeric one earns no credit.
std::string hedged_reply(const Task& t, uint64_t salt);

// The bad demonstrations by name, in one place for the pipeline's option and its check:
// "hedged", "unhelpful", "lazy" (which ignores the salt) and "scattered" (wrong_reply).
const std::vector<std::string>& bad_reply_kinds();
// The named kind's reply; throws xwin::Error for a name not in bad_reply_kinds().
std::string bad_reply(const std::string& kind, const Task& t, uint64_t salt);

nlohmann::json to_json(const Task& t);    // {"family","split","messages":[...],"answer","spec"}
Task from_json(const nlohmann::json& j);  // throws xwin::Error naming the missing field

}  // namespace xwin::tasks
