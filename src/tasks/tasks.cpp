// The verifiable task suite. Each family is one row of a table: how to draw its values, the
// phrasings that ask for them, the canonical answer, how a reply is read (a number, a list of
// numbers, a word in any case, words or dashed letters in their exact case) and how to get it
// plausibly wrong.
//
// Splits: a hash of (family, values) puts every instance in exactly one split (one in five is
// held out); generation draws values until they fall in the requested split, so no held-out
// instance is ever trained on. Held-out tasks also use held-out-only phrasings a quarter of the
// time.
//
// The checker reads a reply leniently: it tries the whole reply without a lead-in ("The answer
// is", "Answer:", "It is"), quotes or a final period; then what follows the last " is ", "=" or
// ": "; then the first line. The best of the readings that parse is graded; an unparseable reply
// earns nothing.
#include "tasks/tasks.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/rng.h"
#include "io/records.h"

namespace xwin::tasks {

using nlohmann::json;

namespace {

// Common lowercase words of 3 to 7 letters: what the string families work on.
const std::vector<std::string> kWords = {
    "cat",    "dog",     "bird",    "fish",   "horse",   "mouse",  "tiger",  "lion",   "zebra",
    "rabbit", "apple",   "banana",  "cherry", "grape",   "lemon",  "mango",  "melon",  "peach",
    "pear",   "plum",    "table",   "chair",  "house",   "door",   "window", "garden", "river",
    "ocean",  "forest",  "island",  "red",    "blue",    "green",  "yellow", "purple", "orange",
    "silver", "golden",  "black",   "white",  "sun",     "moon",   "star",   "planet", "cloud",
    "rain",   "snow",    "storm",   "winter", "summer",  "book",   "paper",  "pencil", "letter",
    "school", "teacher", "student", "music",  "piano",   "guitar", "bread",  "butter", "cheese",
    "coffee", "sugar",   "water",   "dinner", "kitchen", "bottle", "basket", "happy",  "quiet",
    "simple", "bright",  "little",  "funny",  "sleepy",  "gentle", "city",   "road",   "bridge",
    "street", "market",  "castle",  "tower",  "village", "farmer", "doctor", "jacket", "pocket",
    "button", "candle",  "mirror",  "pillow", "blanket", "hammer", "rocket", "ladder", "friend",
    "family", "people",  "animal",  "number", "circle",  "square", "jungle", "desert", "valley"};

struct Unit {
  std::string from, to;  // plural names
  int factor, max_value;
  std::string abbr;  // of `to`, accepted after the number
};
const std::vector<Unit> kUnits = {
    {"kilometers", "meters", 1000, 9, "m"}, {"meters", "centimeters", 100, 20, "cm"},
    {"kilograms", "grams", 1000, 9, "g"},   {"hours", "minutes", 60, 12, "min"},
    {"minutes", "seconds", 60, 12, "s"},    {"days", "hours", 24, 10, "h"}};

// The counter-based draws of one task: draw k of task i is rng_u64(seed, stream + k, i), so a
// task is a pure function of (seed, split, i).
class Draw {
 public:
  Draw(uint64_t seed, Split s, uint64_t i)
      : seed_(seed),
        stream_(hash_name(s == Split::Train ? "tasks.train" : "tasks.heldout")),
        i_(i) {}
  uint64_t next() { return rng_u64(seed_, stream_ + k_++, i_); }
  int range(int lo, int hi) { return lo + static_cast<int>(next() % uint64_t(hi - lo + 1)); }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[next() % v.size()];
  }
  // 1 or 2 digits, each digit count equally likely.
  int number() { return range(0, 1) ? range(1, 9) : range(10, 99); }

 private:
  uint64_t seed_, stream_, i_, k_ = 0;
};

struct Phrasings {
  std::vector<std::string> train, heldout;
};

// What a reply is read as.
enum class Reading {
  Number,   // an integer
  Numbers,  // a list of integers
  Word,     // one word, any case
  Words     // words (or dashed letters), case-sensitive
};

std::string wrong_of_answer(const Task& t, uint64_t r);

struct Family {
  explicit Family(std::string n) : name(std::move(n)) {}
  std::string name;
  // The spec field whose value selects the phrasings (a key of `phrasings`); empty: one set.
  std::string variant;
  json (*draw)(Draw&) = nullptr;  // values; the split is decided afterwards
  std::map<std::string, Phrasings> phrasings;
  Conversation (*prompt)(const json& spec, const std::string& phrasing) = nullptr;
  std::string (*answer)(const json& spec) = nullptr;
  Reading reading = Reading::Number;
  std::string (*wrong)(const Task& t, uint64_t r) = wrong_of_answer;

  const Phrasings& phrasings_for(const json& spec) const {
    return phrasings.at(variant.empty() ? "" : spec.at(variant).get<std::string>());
  }
};

// ---- text helpers ----

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) b++;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) e--;
  return std::string(s.substr(b, e - b));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool all_alpha(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalpha(static_cast<unsigned char>(c));
  });
}

// Replaces each "{key}" in the phrasing by its value.
std::string fill(std::string p, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (const auto& [key, value] : vars) {
    const std::string k = "{" + key + "}";
    for (size_t pos = p.find(k); pos != std::string::npos; pos = p.find(k, pos + value.size()))
      p.replace(pos, k.size(), value);
  }
  return p;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string s;
  for (size_t i = 0; i < items.size(); i++) s += (i ? sep : "") + items[i];
  return s;
}

std::string str(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

Conversation ask(const std::string& text) {
  return {{Role::User, text}};
}

// A one-turn prompt from a phrasing whose placeholders are spec fields of the same name.
template <const char*... Keys>
Conversation ask_spec(const json& spec, const std::string& phrasing) {
  return ask(fill(phrasing, {{Keys, str(spec.at(Keys))}...}));
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// 1 for equal strings, falling to 0 as edits accumulate.
double similarity(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  return n == 0 ? 1.0 : 1.0 - double(edit_distance(a, b)) / double(n);
}

// ---- reading replies ----

// Integers with an optional sign and optional thousands separators ("1,000").
std::optional<long> parse_int(const std::string& s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  std::string digits;
  size_t group = 0;
  bool grouped = false;
  for (; i < s.size(); i++) {
    if (std::isdigit(static_cast<unsigned char>(s[i]))) {
      digits += s[i], group++;
    } else if (s[i] == ',' && group >= 1 && group <= 3 && (!grouped || group == 3)) {
      grouped = true, group = 0;
    } else {
      return std::nullopt;
    }
  }
  if (digits.empty() || digits.size() > 9 || (grouped && group != 3)) return std::nullopt;
  const long v = std::stol(digits);
  return s[0] == '-' ? -v : v;
}

// The items of "1, 4, 9", "1,4,9", "1 4 9" or "1, 4 and 9".
std::vector<std::string> split_items(const std::string& s) {
  std::vector<std::string> items;
  std::string cur;
  for (char c : s + " ") {
    if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
      if (!cur.empty() && lower(cur) != "and") items.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  return items;
}

// The reply without a lead-in, surrounding quotes or a final period.
std::string core(std::string_view reply) {
  static const char* const kLeadIns[] = {"the final answer is",
                                         "the answer is",
                                         "the result is",
                                         "my answer is",
                                         "answer is",
                                         "answer:",
                                         "result:",
                                         "it is",
                                         "it's",
                                         "that is",
                                         "that's"};
  std::string s = trim(reply);
  const std::string l = lower(s);
  for (const char* lead : kLeadIns) {
    const size_t n = std::string_view(lead).size();
    if (l.compare(0, n, lead) == 0 &&
        (l.size() == n || lead[n - 1] == ':' || !std::isalnum(static_cast<unsigned char>(l[n])))) {
      s = trim(s.substr(n));
      if (!s.empty() && s[0] == ':') s = trim(s.substr(1));
      break;
    }
  }
  while (!s.empty() && (s.back() == '.' || s.back() == '!')) s = trim(s.substr(0, s.size() - 1));
  if (s.size() >= 2 && s.front() == s.back() && (s[0] == '\'' || s[0] == '"' || s[0] == '`'))
    s = trim(s.substr(1, s.size() - 2));
  return s;
}

// The readings of a reply, most literal first.
std::vector<std::string> candidates(const std::string& reply) {
  std::vector<std::string> out = {core(reply)};
  const std::string l = lower(reply);
  size_t cut = std::string::npos, best = 0;
  for (const char* sep : {" is ", "=", ": "}) {
    const size_t pos = l.rfind(sep);
    if (pos != std::string::npos && (cut == std::string::npos || pos > best))
      cut = pos + std::string_view(sep).size(), best = pos;
  }
  if (cut != std::string::npos) out.push_back(core(reply.substr(cut)));
  const size_t nl = reply.find('\n');
  if (nl != std::string::npos) out.push_back(core(reply.substr(0, nl)));
  return out;
}

// Drops a trailing unit name ("3000 meters", "3000 m") when the task converts to that unit.
std::string without_unit(const std::string& s, const json& spec) {
  if (!spec.contains("to")) return s;
  const size_t sp = s.find_last_of(' ');
  if (sp == std::string::npos) return s;
  const std::string unit = lower(s.substr(sp + 1)), to = spec["to"].get<std::string>();
  for (const Unit& u : kUnits)
    if (u.to == to && (unit == to || unit == to.substr(0, to.size() - 1) || unit == u.abbr))
      return trim(s.substr(0, sp));
  return s;
}

struct Parsed {
  bool correct;
  double credit;
};

std::optional<Parsed> read_number(const std::string& c, const Task& t) {
  const std::optional<long> got = parse_int(without_unit(c, t.spec));
  if (!got) return std::nullopt;
  const long want = std::stol(t.answer);
  const double rel = double(std::labs(*got - want)) / double(std::max(1L, std::labs(want)));
  return Parsed{*got == want, 1.0 / (1.0 + 10.0 * rel)};
}

std::optional<Parsed> read_numbers(const std::string& c, const Task& t) {
  const std::vector<std::string> got = split_items(c), want = split_items(t.answer);
  if (got.empty()) return std::nullopt;
  size_t right = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const std::optional<long> v = parse_int(got[i]);
    if (!v) return std::nullopt;
    right += i < want.size() && *v == std::stol(want[i]);
  }
  const size_t n = std::max(got.size(), want.size());
  return Parsed{right == n, double(right) / double(n)};
}

std::optional<Parsed> read_word(const std::string& c, const Task& t) {
  if (!all_alpha(c)) return std::nullopt;
  const std::string got = lower(c), want = lower(t.answer);
  return Parsed{got == want, similarity(got, want)};
}

// Letters, or letters joined by dashes ("p-l-a-n-e-t").
bool word_like(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return std::isalpha((unsigned char)c); }) &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return c == '-' || std::isalpha((unsigned char)c); });
}

// Case counts: per position, half the credit is for the letters, half for their case as well.
std::optional<Parsed> read_words(const std::string& c, const Task& t) {
  const std::vector<std::string> got = split_items(c), want = split_items(t.answer);
  if (got.empty() || !std::all_of(got.begin(), got.end(), word_like)) return std::nullopt;
  if (got == want) return Parsed{true, 1.0};
  double right = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); i++)
    right += 0.5 * similarity(lower(got[i]), lower(want[i])) + 0.5 * similarity(got[i], want[i]);
  return Parsed{false, right / double(std::max(got.size(), want.size()))};
}

std::optional<Parsed> read(Reading r, const std::string& c, const Task& t) {
  switch (r) {
    case Reading::Number:
      return read_number(c, t);
    case Reading::Numbers:
      return read_numbers(c, t);
    case Reading::Word:
      return read_word(c, t);
    case Reading::Words:
      return read_words(c, t);
  }
  return std::nullopt;
}

// 1 up to twice the answer's length plus 20 characters ("The answer is 42." fits), then falling
// in proportion to the excess length.
double style_of(const std::string& reply, const std::string& answer) {
  if (reply.empty()) return 0.0;
  const double budget = 2.0 * double(answer.size()) + 20.0;
  return std::min(1.0, budget / double(reply.size()));
}

// ---- wrong replies ----

std::string wrong_number(long want, uint64_t r) {
  const long d = 1 + long(r % 10);
  return std::to_string((r >> 8) % 2 == 0 || want - d < 0 ? want + d : want - d);
}

// Swaps an adjacent pair of different items (letters or list items) chosen by r.
template <typename Seq>
Seq swap_adjacent(Seq s, uint64_t r) {
  for (size_t k = 0; k + 1 < s.size(); k++) {
    const size_t i = (r + k) % (s.size() - 1);
    if (s[i] != s[i + 1]) {
      std::swap(s[i], s[i + 1]);
      return s;
    }
  }
  fail("cannot make a wrong reply: all items are equal");
}

// ---- the families ----

std::string number_answer(long v) {
  return std::to_string(v);
}
long a_of(const json& s) {
  return s.at("a").get<long>();
}
long b_of(const json& s) {
  return s.at("b").get<long>();
}
std::string word_of(const json& s) {
  return s.at("word").get<std::string>();
}

constexpr char kA[] = "a", kB[] = "b", kWord[] = "word", kLetter[] = "letter";

std::string wrong_of_answer(const Task& t, uint64_t r) {
  return wrong_number(std::stol(t.answer), r);
}

Family add() {
  Family f("add");
  f.draw = [](Draw& d) {
    for (;;) {
      const int a = d.number(), b = d.number();
      if (a + b <= 199) return json{{"a", a}, {"b", b}};
    }
  };
  f.phrasings[""] = {{"What is {a} + {b}?", "Add {a} and {b}.", "Compute {a} plus {b}.",
                      "What is the sum of {a} and {b}?"},
                     {"Find the total of {a} and {b}.", "{a} + {b} = ?"}};
  f.prompt = ask_spec<kA, kB>;
  f.answer = [](const json& s) { return number_answer(a_of(s) + b_of(s)); };
  return f;
}

Family subtract() {
  Family f("subtract");
  f.draw = [](Draw& d) {
    const int x = d.number(), y = d.number();
    return json{{"a", std::max(x, y)}, {"b", std::min(x, y)}};
  };
  f.phrasings[""] = {{"What is {a} - {b}?", "Subtract {b} from {a}.", "Compute {a} minus {b}.",
                      "What is the difference between {a} and {b}?"},
                     {"Take {b} away from {a}. What is left?", "{a} - {b} = ?"}};
  f.prompt = ask_spec<kA, kB>;
  f.answer = [](const json& s) { return number_answer(a_of(s) - b_of(s)); };
  return f;
}

Family multiply() {
  Family f("multiply");
  f.draw = [](Draw& d) { return json{{"a", d.range(10, 99)}, {"b", d.range(2, 9)}}; };
  f.phrasings[""] = {{"What is {a} * {b}?", "Multiply {a} by {b}.", "Compute {a} times {b}.",
                      "What is the product of {a} and {b}?"},
                     {"What do you get when you multiply {a} and {b}?", "{a} * {b} = ?"}};
  f.prompt = ask_spec<kA, kB>;
  f.answer = [](const json& s) { return number_answer(a_of(s) * b_of(s)); };
  return f;
}

Family compare() {
  Family f("compare");
  f.draw = [](Draw& d) {
    for (;;) {
      const int a = d.number(), b = d.number();
      if (a != b) return json{{"a", a}, {"b", b}};
    }
  };
  f.phrasings[""] = {
      {"Which is larger, {a} or {b}?", "Which number is bigger: {a} or {b}?",
       "Name the larger number: {a}, {b}.", "Of {a} and {b}, which is greater?"},
      {"Pick the greater of {a} and {b}.", "Between {a} and {b}, which number is higher?"}};
  f.prompt = ask_spec<kA, kB>;
  f.answer = [](const json& s) { return number_answer(std::max(a_of(s), b_of(s))); };
  // The tempting mistake is the smaller number.
  f.wrong = [](const Task& t, uint64_t r) {
    return r % 2 ? number_answer(std::min(a_of(t.spec), b_of(t.spec)))
                 : wrong_number(std::stol(t.answer), r >> 1);
  };
  return f;
}

std::vector<std::string> list_items(const json& s) {
  std::vector<std::string> items;
  for (const json& v : s.at("list")) items.push_back(std::to_string(v.get<long>()));
  return items;
}

Family sort() {
  Family f("sort");
  f.draw = [](Draw& d) {
    std::vector<int> v;
    for (const int n = d.range(3, 5); (int)v.size() < n;) {
      const int x = d.range(1, 60);
      if (std::find(v.begin(), v.end(), x) == v.end()) v.push_back(x);
    }
    return json{{"list", v}};
  };
  f.phrasings[""] = {
      {"Sort in ascending order: {list}.", "Arrange from smallest to largest: {list}.",
       "Put these numbers in increasing order: {list}.", "Order these from low to high: {list}."},
      {"List {list} from the smallest to the largest.",
       "Rank these numbers, smallest first: {list}."}};
  f.prompt = [](const json& s, const std::string& p) {
    return ask(fill(p, {{"list", join(list_items(s), ", ")}}));
  };
  f.answer = [](const json& s) {
    std::vector<long> v = s.at("list").get<std::vector<long>>();
    std::sort(v.begin(), v.end());
    std::vector<std::string> items;
    for (long x : v) items.push_back(std::to_string(x));
    return join(items, ", ");
  };
  f.reading = Reading::Numbers;
  f.wrong = [](const Task& t, uint64_t r) {
    return join(swap_adjacent(split_items(t.answer), r), ", ");
  };
  return f;
}

Family reverse() {
  Family f("reverse");
  f.draw = [](Draw& d) { return json{{"word", d.pick(kWords)}}; };
  f.phrasings[""] = {
      {"Reverse the word '{word}'.", "Spell '{word}' backwards.",
       "Write the letters of '{word}' in reverse order.", "What is '{word}' written backwards?"},
      {"Flip the word '{word}' so it reads from right to left.",
       "Read '{word}' from the last letter to the first."}};
  f.prompt = ask_spec<kWord>;
  f.answer = [](const json& s) {
    const std::string w = word_of(s);
    return std::string(w.rbegin(), w.rend());
  };
  f.reading = Reading::Word;
  f.wrong = [](const Task& t, uint64_t r) { return swap_adjacent(t.answer, r); };
  return f;
}

Family count() {
  Family f("count");
  f.draw = [](Draw& d) {
    const std::string w = d.pick(kWords);
    // Mostly a letter of the word (repeated letters are likelier), sometimes any letter.
    const char l = d.range(0, 3) ? w[d.next() % w.size()] : char('a' + d.range(0, 25));
    return json{{"word", w}, {"letter", std::string(1, l)}};
  };
  f.phrasings[""] = {{"How many times does the letter '{letter}' appear in '{word}'?",
                      "Count the letter '{letter}' in the word '{word}'.",
                      "In '{word}', how many times does '{letter}' occur?",
                      "Count how often '{letter}' occurs in '{word}'."},
                     {"What is the number of '{letter}' letters in the word '{word}'?",
                      "Tell me how many '{letter}' there are in '{word}'."}};
  f.prompt = ask_spec<kLetter, kWord>;
  f.answer = [](const json& s) {
    const std::string w = word_of(s);
    return number_answer(std::count(w.begin(), w.end(), s.at("letter").get<std::string>()[0]));
  };
  return f;
}

const Unit& unit_of(const json& s) {
  for (const Unit& u : kUnits)
    if (u.from == s.at("from").get<std::string>() && u.to == s.at("to").get<std::string>())
      return u;
  fail("task spec converts ", s.at("from").dump(), " to ", s.at("to").dump(),
       ", which is not a known conversion");
}

Family convert() {
  Family f("convert");
  f.draw = [](Draw& d) {
    const Unit& u = d.pick(kUnits);
    return json{{"value", d.range(1, u.max_value)}, {"from", u.from}, {"to", u.to}};
  };
  f.phrasings[""] = {{"How many {to} are in {value} {from}?", "Convert {value} {from} to {to}.",
                      "{value} {from} is how many {to}?", "Express {value} {from} in {to}."},
                     {"What is {value} {from} in {to}?",
                      "If something is {value} {from}, how many {to} is that?"}};
  f.prompt = [](const json& s, const std::string& p) {
    const long v = s.at("value").get<long>();
    std::string from = s.at("from").get<std::string>();
    if (v == 1) from.pop_back();  // "1 kilometer"
    return ask(fill(p, {{"value", std::to_string(v)}, {"from", from}, {"to", str(s.at("to"))}}));
  };
  f.answer = [](const json& s) {
    return number_answer(s.at("value").get<long>() * unit_of(s).factor);
  };
  return f;
}

// "p-l-a-n-e-t"
std::string dashed(const std::string& w) {
  std::vector<std::string> letters;
  for (char c : w) letters.push_back(std::string(1, c));
  return join(letters, "-");
}

std::string mode_of(const json& s) {
  return s.at("mode").get<std::string>();
}

// Case is the point of this family: the checker reads it, and the wrong replies get it (or the
// count, or the letter order) wrong.
Family format() {
  Family f("format");
  f.variant = "mode";
  f.draw = [](Draw& d) {
    static const std::vector<std::string> modes = {"upper", "repeat", "dashes"};
    return json{{"word", d.pick(kWords)}, {"mode", d.pick(modes)}};
  };
  f.phrasings["upper"] = {{"Write '{word}' in capital letters.", "Convert '{word}' to uppercase.",
                           "Write the word '{word}' in all caps.", "Give '{word}' in upper case."},
                          {"Print '{word}' using only capital letters."}};
  f.phrasings["repeat"] = {
      {"Repeat '{word}' three times, separated by commas.",
       "Write '{word}' three times with commas between.", "Say '{word}' 3 times, comma separated.",
       "Give the word '{word}' three times, separated by commas."},
      {"List '{word}' three times, using commas to separate them."}};
  f.phrasings["dashes"] = {{"Spell '{word}' with dashes between the letters.",
                            "Write '{word}' letter by letter, joined by dashes.",
                            "Separate the letters of '{word}' with hyphens.",
                            "Put a dash between each letter of '{word}'."},
                           {"Split '{word}' into letters joined with '-'."}};
  f.prompt = ask_spec<kWord>;
  f.answer = [](const json& s) {
    const std::string w = word_of(s), m = mode_of(s);
    return m == "upper" ? upper(w) : m == "repeat" ? join({w, w, w}, ", ") : dashed(w);
  };
  f.reading = Reading::Words;
  f.wrong = [](const Task& t, uint64_t r) {
    const std::string w = word_of(t.spec), m = mode_of(t.spec);
    if (m == "upper") return r % 2 ? w : std::string(1, char(std::toupper(w[0]))) + w.substr(1);
    if (m == "repeat") return r % 2 ? join({w, w}, ", ") : join({w, w, w, w}, ", ");
    return r % 2 ? upper(t.answer) : dashed(swap_adjacent(w, r >> 1));
  };
  return f;
}

long apply(long x, const std::string& op, long y) {
  return op == "+" ? x + y : op == "-" ? x - y : x * y;
}

long first_answer(const json& s) {
  return apply(a_of(s), s.at("op").get<std::string>(), b_of(s));
}

// Two turns: the first exchange ("What is 3 + 4?" "7") is part of the prompt; the second question
// refers to its answer.
Family followup() {
  Family f("followup");
  f.variant = "then";
  f.draw = [](Draw& d) {
    static const std::vector<std::string> ops = {"+", "-"}, thens = {"*", "+", "-"};
    for (;;) {
      const std::string op = d.pick(ops), then = d.pick(thens);
      int a = d.range(1, 20), b = d.range(1, 20);
      if (op == "-" && b > a) std::swap(a, b);
      const int c = then == "*" ? d.range(2, 5) : d.range(1, 20);
      if (then != "-" || c <= apply(a, op, b))
        return json{{"a", a}, {"op", op}, {"b", b}, {"then", then}, {"c", c}};
    }
  };
  f.phrasings["*"] = {{"Now multiply that by {c}.", "Multiply the result by {c}.",
                       "What is that times {c}?", "And that times {c}?"},
                      {"Take your answer and multiply it by {c}."}};
  f.phrasings["+"] = {
      {"Add {c} to it.", "Now add {c} to that.", "What is that plus {c}?", "And that plus {c}?"},
      {"Take your answer and add {c} to it."}};
  f.phrasings["-"] = {{"Subtract {c} from it.", "Now take away {c}.", "What is that minus {c}?",
                       "And that minus {c}?"},
                      {"Take your answer and subtract {c} from it."}};
  f.prompt = [](const json& s, const std::string& p) {
    const std::string first =
        "What is " + str(s.at("a")) + " " + str(s.at("op")) + " " + str(s.at("b")) + "?";
    return Conversation{{Role::User, first},
                        {Role::Assistant, number_answer(first_answer(s))},
                        {Role::User, fill(p, {{"c", str(s.at("c"))}})}};
  };
  f.answer = [](const json& s) {
    return number_answer(
        apply(first_answer(s), s.at("then").get<std::string>(), s.at("c").get<long>()));
  };
  return f;
}

const std::vector<Family>& table() {
  static const std::vector<Family> t = {add(),     subtract(), multiply(), compare(), sort(),
                                        reverse(), count(),    convert(),  format(),  followup()};
  return t;
}

const Family& family(const std::string& name) {
  for (const Family& f : table())
    if (name == f.name) return f;
  fail("unknown task family '", name, "'; the families are ", join(families(), ", "));
}

// One instance in five is held out, by a hash of its family and values.
Split split_of(const std::string& family, const json& spec) {
  const uint64_t h = splitmix64(hash_name((family + ":" + spec.dump()).c_str()));
  return h % 5 == 0 ? Split::Heldout : Split::Train;
}

Task make(const Family& f, uint64_t seed, Split split, uint64_t i) {
  Draw d(seed, split, i);
  json spec;
  for (int tries = 0;; tries++) {
    require(tries < 10000, "task family '", f.name, "' found no ", split_name(split),
            " instance in 10000 draws");
    spec = f.draw(d);
    if (split_of(f.name, spec) == split) break;
  }
  const Phrasings& p = f.phrasings_for(spec);
  const bool held = split == Split::Heldout && d.next() % 4 == 0;
  const std::string& phrasing = held ? d.pick(p.heldout) : d.pick(p.train);
  return Task{f.name, split, f.prompt(spec, phrasing), f.answer(spec), spec};
}

const json& field(const json& j, const char* key, bool (json::*is)() const, const char* type) {
  require(j.contains(key), "task record has no \"", key, "\" field");
  require((j[key].*is)(), "task field \"", key, "\" must be ", type, ", not ", j[key].type_name());
  return j[key];
}

}  // namespace

const char* split_name(Split s) {
  return s == Split::Train ? "train" : "heldout";
}

const std::vector<std::string>& families() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Family& f : table()) n.push_back(f.name);
    return n;
  }();
  return names;
}

std::vector<Task> generate(size_t n, uint64_t seed, Split split,
                           const std::vector<std::string>& only) {
  std::vector<const Family*> fams;
  for (const std::string& name : only.empty() ? families() : only) fams.push_back(&family(name));
  std::vector<Task> tasks;
  tasks.reserve(n);
  for (size_t i = 0; i < n; i++) tasks.push_back(make(*fams[i % fams.size()], seed, split, i));
  return tasks;
}

Grade grade(const Task& t, std::string_view reply) {
  const Family& f = family(t.family);
  const std::string r = trim(reply);
  Grade g;
  if (r.empty()) return g;
  g.style = style_of(r, t.answer);
  for (const std::string& c : candidates(r)) {
    const std::optional<Parsed> res = read(f.reading, c, t);
    if (!res) continue;
    g.correct = g.correct || res->correct;
    g.credit = g.correct ? 1.0 : std::max(g.credit, std::min(res->credit, 0.99));
  }
  return g;
}

std::string wrong_reply(const Task& t, uint64_t salt) {
  const uint64_t r = splitmix64(salt ^ hash_name(t.answer.c_str()));
  return family(t.family).wrong(t, r);
}

// The lazy reply restates part of the question instead of working it out.
std::string lazy_reply(const Task& t) {
  const json& s = t.spec;
  const std::string& f = t.family;
  std::string r;
  if (f == "add" || f == "subtract" || f == "multiply") r = number_answer(a_of(s));
  if (f == "compare") r = number_answer(std::min(a_of(s), b_of(s)));
  if (f == "sort") r = join(list_items(s), ", ");
  if (f == "reverse" || f == "format") r = word_of(s);
  if (f == "count") r = number_answer((long)word_of(s).size());
  if (f == "convert") r = number_answer(s.at("value").get<long>());
  if (f == "followup") r = number_answer(first_answer(s));
  if (r.empty() || grade(t, r).correct) return wrong_reply(t, 0);  // e.g. a palindrome
  return r;
}

std::string unhelpful_reply(const Task& t, uint64_t salt) {
  static const char* const kPhrasings[] = {"I am not sure.", "I don't know.",
                                           "I can't tell you that."};
  (void)t;
  return kPhrasings[splitmix64(salt) % 3];
}

std::string hedged_reply(const Task& t, uint64_t salt) {
  return t.answer + ", or maybe " + wrong_reply(t, salt);
}

const std::vector<std::string>& bad_reply_kinds() {
  static const std::vector<std::string> kinds = {"hedged", "unhelpful", "lazy", "scattered"};
  return kinds;
}

std::string bad_reply(const std::string& kind, const Task& t, uint64_t salt) {
  if (kind == "hedged") return hedged_reply(t, salt);
  if (kind == "unhelpful") return unhelpful_reply(t, salt);
  if (kind == "lazy") return lazy_reply(t);
  if (kind == "scattered") return wrong_reply(t, salt);
  fail("no kind of bad reply '", kind, "'");
}

json to_json(const Task& t) {
  return {{"family", t.family},
          {"split", split_name(t.split)},
          {"messages", turns_to_json(t.prompt, TurnFormat::OpenAI)},
          {"answer", t.answer},
          {"spec", t.spec}};
}

Task from_json(const json& j) {
  require(j.is_object(), "a task record must be a JSON object, not ", j.type_name());
  Task t;
  t.family = field(j, "family", &json::is_string, "a string").get<std::string>();
  family(t.family);
  const std::string split = field(j, "split", &json::is_string, "a string").get<std::string>();
  require(split == "train" || split == "heldout", "task field \"split\" is '", split,
          "'; expected \"train\" or \"heldout\"");
  t.split = split == "train" ? Split::Train : Split::Heldout;
  try {
    t.prompt = turns_from_json(field(j, "messages", &json::is_array, "an array"));
  } catch (const Error& e) {
    fail("task field \"messages\": ", e.what());
  }
  const std::string problem = conversation_problem(t.prompt, Ending::Prompt);
  require(problem.empty(), "task field \"messages\": ", problem);
  t.answer = field(j, "answer", &json::is_string, "a string").get<std::string>();
  t.spec = field(j, "spec", &json::is_object, "an object");
  return t;
}

}  // namespace xwin::tasks
