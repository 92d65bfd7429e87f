// The shared option groups of the phases that turn text into ids: [tokenizer] (which
// SentencePiece model) and [template] (the chat template's strings, as data). Defined in
// phase_tokenizer.cpp.
#pragma once
#include <string>

#include "app/cli.h"
#include "io/chat_template.h"

namespace xwin::cli {

void add_text_group(po::options_description& d, Group g);
// tokenizer.model, or a usage error naming the option when it is missing.
std::string tokenizer_model(const po::variables_map& vm, const Phase& phase);
// The [template] strings; a value in double quotes is read as a JSON string, so that leading
// or trailing spaces survive the deck ("USER: ") and escapes like \n or \u0023 (#) work.
ChatTemplate chat_template(const po::variables_map& vm);

}  // namespace xwin::cli
