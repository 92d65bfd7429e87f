#include "io/datasets.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/version.h"

namespace xwin {

Overlong overlong_from_string(const std::string& s) {
  if (s == "drop") return Overlong::Drop;
  if (s == "truncate") return Overlong::Truncate;
  if (s == "error") return Overlong::Error;
  fail("overlong = '", s, "' is not drop, truncate or error");
}

const char* overlong_name(Overlong o) {
  return o == Overlong::Drop ? "drop" : o == Overlong::Truncate ? "truncate" : "error";
}

static std::string str_attr(const h5::File& f, const char* key) {
  return f.has_attr("/", key) ? f.attr_string("/", key) : "";
}
static int64_t int_attr(const h5::File& f, const char* key) {
  return f.has_attr("/", key) ? f.attr_int("/", key) : 0;
}

DatasetInfo DatasetInfo::read(const h5::File& f) {
  DatasetInfo d;
  d.schema = str_attr(f, "schema");
  d.version = int_attr(f, "version");
  d.tokenizer_hash = str_attr(f, "tokenizer_hash");
  d.tokenizer_path = str_attr(f, "tokenizer_path");
  d.template_json = str_attr(f, "template");
  d.source = str_attr(f, "source");
  d.overlong = str_attr(f, "overlong");
  d.max_seq_len = int_attr(f, "max_seq_len");
  d.n_kept = int_attr(f, "n_kept");
  d.n_truncated = int_attr(f, "n_truncated");
  d.n_dropped = int_attr(f, "n_dropped");
  d.n_skipped = int_attr(f, "n_skipped");
  return d;
}

DatasetInfo DatasetInfo::read(const std::string& path) {
  return read(h5::File(path, 'r'));
}

void DatasetInfo::write(h5::File& f) const {
  f.set_attr("/", "schema", schema);
  f.set_attr("/", "version", version);
  f.set_attr("/", "tokenizer_hash", tokenizer_hash);
  f.set_attr("/", "tokenizer_path", tokenizer_path);
  f.set_attr("/", "template", template_json);
  f.set_attr("/", "source", source);
  f.set_attr("/", "overlong", overlong);
  f.set_attr("/", "max_seq_len", max_seq_len);
  f.set_attr("/", "n_records", n_records());
  f.set_attr("/", "n_kept", n_kept);
  f.set_attr("/", "n_truncated", n_truncated);
  f.set_attr("/", "n_dropped", n_dropped);
  f.set_attr("/", "n_skipped", n_skipped);
  f.set_attr("/", "xwin_version", std::string(XWIN_VERSION " (" XWIN_GIT_REV ")"));
}

static const char* maker(const std::string& schema) {
  if (schema == kSchemaSft) return "xwin data sft";
  if (schema == kSchemaPairs) return "xwin data pairs";
  if (schema == kSchemaPrompts) return "xwin data prompts";
  if (schema == kSchemaXwinSet) return "xwin data xwin_set or xwin sample";
  return "xwin data tokens";
}

void DatasetInfo::check_schema(const std::string& path, const std::string& want) const {
  const std::string list = "," + want + ",";
  if (list.find("," + schema + ",") != std::string::npos) return;
  const std::string first = want.substr(0, want.find(','));
  fail(path, ": this is ",
       schema.empty() ? "not an xwin dataset (no schema attribute)" : "an " + schema + " dataset",
       ", but ", first, " is needed; make one with `", maker(first), "`");
}

void DatasetInfo::check_tokenizer(const std::string& path, const std::string& hash,
                                  const std::string& tok_path) const {
  // Raw token lists (xwin data tokens) carry no tokenizer: nothing to compare.
  if (hash.empty() || tokenizer_hash == hash || schema == kSchemaTokens) return;
  require(!tokenizer_hash.empty(), path, ": records no tokenizer_hash, so it cannot be checked ",
          "against ", tok_path, "; convert the data again with `xwin data`");
  fail(path, ": made with another tokenizer (", tokenizer_path, ", ", tokenizer_hash,
       ") than this run's (", tok_path, ", ", hash, "); convert the data again with ",
       "--tokenizer.model ", tok_path, " or use the tokenizer the data was made with");
}

// A ragged array under `group`, with the structure checks of TokenDataset::load.
static TokenDataset read_ragged(const h5::File& f, const std::string& group) {
  TokenDataset d;
  d.tokens = f.read_all<int32_t>(group + "/tokens");
  d.offsets = f.read_all<int64_t>(group + "/offsets");
  require(
      !d.offsets.empty() && d.offsets.front() == 0 && d.offsets.back() == (int64_t)d.tokens.size(),
      f.path(), ": ", group, "/offsets must run from 0 to the number of tokens (", d.tokens.size(),
      "); the file is damaged");
  for (size_t r = 0; r + 1 < d.offsets.size(); r++)
    require(d.offsets[r] <= d.offsets[r + 1], f.path(), ": ", group, " record ", r,
            " has a negative length; the file is damaged");
  return d;
}

static DatasetInfo open_checked(const h5::File& f, const char* schema, const std::string& hash) {
  DatasetInfo info = DatasetInfo::read(f);
  info.check_schema(f.path(), schema);
  info.check_tokenizer(f.path(), hash, "this run's tokenizer");
  return info;
}

static void require_rows(const h5::File& f, const std::string& name, size_t got, size_t want) {
  require(got == want, f.path(), ": ", name, " has ", got, " records but the dataset has ", want,
          "; the file is damaged");
}

PairsDataset PairsDataset::load(const std::string& path, const std::string& hash) {
  h5::File f(path, 'r');
  PairsDataset d;
  d.info = open_checked(f, kSchemaPairs, hash);
  d.prompt = read_ragged(f, "/prompt");
  d.chosen = read_ragged(f, "/chosen");
  d.rejected = read_ragged(f, "/rejected");
  require_rows(f, "/chosen", d.chosen.size(), d.size());
  require_rows(f, "/rejected", d.rejected.size(), d.size());
  if (f.exists("/margin")) d.margin = f.read_all<float>("/margin");
  if (f.exists("/tie")) d.tie = f.read_all<uint8_t>("/tie");
  if (!d.margin.empty()) require_rows(f, "/margin", d.margin.size(), d.size());
  if (!d.tie.empty()) require_rows(f, "/tie", d.tie.size(), d.size());
  return d;
}

PromptsDataset PromptsDataset::load(const std::string& path, const std::string& hash) {
  h5::File f(path, 'r');
  PromptsDataset d;
  d.info = open_checked(f, kSchemaPrompts, hash);
  d.prompt = read_ragged(f, "/prompt");
  return d;
}

XwinSetDataset XwinSetDataset::load(const std::string& path, const std::string& hash) {
  h5::File f(path, 'r');
  XwinSetDataset d;
  d.info = open_checked(f, kSchemaXwinSet, hash);
  d.K = f.attr_int("/", "K");
  require(d.K > 0, path, ": attribute K = ", d.K, " must be positive");
  d.prompt = read_ragged(f, "/prompt");
  d.responses = read_ragged(f, "/responses");
  const size_t pk = d.size() * (size_t)d.K;
  require_rows(f, "/responses", d.responses.size(), pk);
  const std::vector<int64_t> shape = f.shape("/scores");
  require(shape.size() == 2 && shape[0] == (int64_t)d.size() && shape[1] == d.K, path,
          ": /scores must have shape [P, K] = [", d.size(), ", ", d.K, "]");
  d.scores = f.read_all<float>("/scores");
  if (f.exists("/ref_logp")) {
    d.ref_logp = f.read_all<float>("/ref_logp");
    require_rows(f, "/ref_logp", d.ref_logp.size(), pk);
  }
  return d;
}

DatasetWriter::DatasetWriter(const std::string& path, MPI_Comm comm)
    : path_(path), tmp_(path + ".tmp"), comm_(comm) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
  file_ = std::make_unique<h5::File>(tmp_, 'w', size_ > 1 ? comm : MPI_COMM_NULL);
}

DatasetWriter::~DatasetWriter() {
  if (!file_) return;
  // Not committed: an error is unwinding. Closing a parallel file is collective and the other
  // ranks may be elsewhere, so leave it to MPI_Abort; a serial run removes the partial file.
  if (size_ > 1) {
    (void)file_.release();
    return;
  }
  file_.reset();
  std::remove(tmp_.c_str());
}

void DatasetWriter::concat(const std::string& name, hid_t type, const void* data, int64_t rows,
                           int64_t cols, size_t elem) {
  std::vector<int64_t> all(size_);
  MPI_Allgather(&rows, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_);
  int64_t start = 0, total = 0;
  for (int r = 0; r < size_; r++) start += r < rank_ ? all[r] : 0, total += all[r];
  const int nd = cols > 0 ? 2 : 1;
  const int64_t width = std::max<int64_t>(cols, 1);
  const hsize_t dims[2] = {(hsize_t)total, (hsize_t)width};
  const size_t slash = name.rfind('/');
  if (slash != std::string::npos && slash > 0 && !file_->exists(name.substr(0, slash))) {
    h5::Id g(H5Gcreate2(file_->id(), name.substr(0, slash).c_str(), H5P_DEFAULT, H5P_DEFAULT,
                        H5P_DEFAULT));
    require(g.get() >= 0, tmp_, ": cannot create group ", name.substr(0, slash));
  }
  h5::Id space(H5Screate_simple(nd, dims, nullptr));
  h5::Id dset(
      H5Dcreate2(file_->id(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  require(dset.get() >= 0, tmp_, ": cannot create dataset ", name);
  h5::Id dxpl(H5Pcreate(H5P_DATASET_XFER));
  if (size_ > 1) H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  // At most 256 MiB a call (MPI-IO counts are int), the same number of calls on every rank.
  const int64_t step = std::max<int64_t>(1, (int64_t(1) << 28) / (width * (int64_t)elem));
  int64_t calls = (rows + step - 1) / step, max_calls = 0;
  MPI_Allreduce(&calls, &max_calls, 1, MPI_INT64_T, MPI_MAX, comm_);
  const char dummy = 0;
  for (int64_t c = 0; c < std::max<int64_t>(max_calls, 1); c++) {
    const int64_t lo = std::min(rows, c * step), n = std::min(rows, lo + step) - lo;
    const hsize_t off[2] = {(hsize_t)(start + lo), 0}, cnt[2] = {(hsize_t)n, (hsize_t)width};
    const hsize_t one[2] = {1, (hsize_t)width};
    h5::Id fspace(H5Dget_space(dset));
    h5::Id mspace(H5Screate_simple(nd, n > 0 ? cnt : one, nullptr));
    if (n > 0) {
      H5Sselect_hyperslab(fspace, H5S_SELECT_SET, off, nullptr, cnt, nullptr);
    } else {  // a rank with nothing to write still joins the collective call
      H5Sselect_none(fspace);
      H5Sselect_none(mspace);
    }
    const void* p = n > 0 ? static_cast<const char*>(data) + lo * width * elem : &dummy;
    require(H5Dwrite(dset, type, mspace, fspace, dxpl, p) >= 0, tmp_, ": writing ", name,
            " failed (disk full or quota?)");
  }
  bytes_ += (size_t)(rows * width) * elem;
}

void DatasetWriter::ragged(const std::string& group, const TokenDataset& local, bool with_mask) {
  // Local offsets become global by the number of tokens on lower ranks; the last rank adds the
  // closing offset, so the file holds n + 1 of them.
  int64_t ntok = (int64_t)local.tokens.size(), before = 0;
  MPI_Exscan(&ntok, &before, 1, MPI_INT64_T, MPI_SUM, comm_);
  if (rank_ == 0) before = 0;
  std::vector<int64_t> offs(local.offsets.begin(), local.offsets.end() - (rank_ < size_ - 1));
  for (int64_t& o : offs) o += before;
  concat(group + "/tokens", H5T_NATIVE_INT32, local.tokens.data(), ntok, 0, sizeof(int32_t));
  concat(group + "/offsets", H5T_NATIVE_INT64, offs.data(), (int64_t)offs.size(), 0,
         sizeof(int64_t));
  if (with_mask)
    concat(group + "/loss_mask", H5T_NATIVE_UINT8, local.loss_mask.data(),
           (int64_t)local.loss_mask.size(), 0, 1);
}

void DatasetWriter::rows(const std::string& name, const std::vector<float>& local, int64_t cols) {
  concat(name, H5T_NATIVE_FLOAT, local.data(), (int64_t)local.size() / std::max<int64_t>(cols, 1),
         cols, sizeof(float));
}

void DatasetWriter::rows(const std::string& name, const std::vector<uint8_t>& local, int64_t cols) {
  concat(name, H5T_NATIVE_UINT8, local.data(), (int64_t)local.size() / std::max<int64_t>(cols, 1),
         cols, 1);
}

void DatasetWriter::attr(const std::string& key, int64_t value) {
  file_->set_attr("/", key, value);
}

void DatasetWriter::info(const DatasetInfo& info) {
  info.write(*file_);
}

void DatasetWriter::commit() {
  file_.reset();  // collective close: every rank's data is on disk after this
  MPI_Barrier(comm_);
  int ok = 1;
  if (rank_ == 0) ok = std::rename(tmp_.c_str(), path_.c_str()) == 0;
  MPI_Bcast(&ok, 1, MPI_INT, 0, comm_);
  require(ok, path_, ": cannot rename ", tmp_, " into place");
}

Conversation XwinSetDataset::decode_prompt(size_t p, const ChatEncoder& enc) const {
  return enc.decode_prompt(prompt.tokens.data() + prompt.offsets[p], (size_t)prompt.length(p));
}

std::vector<std::string> XwinSetDataset::decode_replies(size_t p, const ChatEncoder& enc) const {
  const int32_t* pt = prompt.tokens.data() + prompt.offsets[p];
  const size_t np = prompt.length(p);
  std::vector<std::string> r;
  for (size_t i = p * K; i < (p + 1) * K; i++)
    r.push_back(enc.decode_reply(pt, np, responses.tokens.data() + responses.offsets[i],
                                 (size_t)responses.length(i)));
  return r;
}

}  // namespace xwin
