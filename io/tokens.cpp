#include "io/tokens.h"

#include <cstdio>

#include "core/error.h"
#include "core/version.h"
#include "io/h5.h"

namespace xwin {

void TokenDataset::append(const std::vector<int32_t>& toks, const std::vector<uint8_t>& mask) {
  tokens.insert(tokens.end(), toks.begin(), toks.end());
  loss_mask.insert(loss_mask.end(), mask.begin(), mask.end());
  offsets.push_back((int64_t)tokens.size());
}

TokenDataset TokenDataset::load(const std::string& path, int vocab_size) {
  h5::File f(path, 'r');
  // Conversations (xwin.sft) and raw token lists (xwin.tokens) train alike; other datasets not.
  if (f.has_attr("/", "schema")) {
    const std::string schema = f.attr_string("/", "schema");
    require(schema == "xwin.tokens" || schema == "xwin.sft", path, ": this is an ", schema,
            " dataset, but a token dataset (xwin.sft or xwin.tokens) is needed here; make one ",
            "with `xwin data sft`");
  }
  TokenDataset d;
  d.tokens = f.read_all<int32_t>("/tokens");
  d.offsets = f.read_all<int64_t>("/offsets");
  require(
      !d.offsets.empty() && d.offsets.front() == 0 && d.offsets.back() == (int64_t)d.tokens.size(),
      path, ": /offsets must start at 0 and end at the number of tokens (", d.tokens.size(),
      "); the file is damaged or not an xwin token dataset");
  for (size_t r = 0; r + 1 < d.offsets.size(); r++)
    require(d.offsets[r] <= d.offsets[r + 1], path, ": record ", r,
            " has a negative length (offsets not increasing)");
  if (f.exists("/loss_mask")) {
    d.loss_mask = f.read_all<uint8_t>("/loss_mask");
    require(d.loss_mask.size() == d.tokens.size(), path, ": /loss_mask has ", d.loss_mask.size(),
            " entries but /tokens has ", d.tokens.size());
  }
  if (vocab_size > 0)
    for (size_t r = 0; r < d.size(); r++)
      for (int64_t i = d.offsets[r]; i < d.offsets[r + 1]; i++)
        require(d.tokens[i] >= 0 && d.tokens[i] < vocab_size, path, ": record ", r,
                " holds token id ", d.tokens[i], " outside the model's vocabulary [0, ", vocab_size,
                "); tokenize with the model's tokenizer");
  return d;
}

void TokenDataset::save(const std::string& path, const std::string& source) const {
  const std::string tmp = path + ".tmp";
  {
    h5::File f(tmp, 'w');
    f.write("/tokens", tokens.data(), {(int64_t)tokens.size()});
    f.write("/offsets", offsets.data(), {(int64_t)offsets.size()});
    if (!loss_mask.empty()) f.write("/loss_mask", loss_mask.data(), {(int64_t)loss_mask.size()});
    f.set_attr("/", "schema", std::string("xwin.tokens"));
    f.set_attr("/", "version", (int64_t)1);
    f.set_attr("/", "n_records", (int64_t)size());
    f.set_attr("/", "source", source);
    f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
  }
  require(std::rename(tmp.c_str(), path.c_str()) == 0, path, ": cannot rename ", tmp,
          " into place");
}

}  // namespace xwin
