#include "io/h5.h"

#include "core/error.h"

namespace xwin::h5 {

Id& Id::operator=(Id&& o) noexcept {
  if (this != &o) {
    this->~Id();
    id_ = o.id_;
    o.id_ = -1;
  }
  return *this;
}

Id::~Id() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE:
      H5Fclose(id_);
      break;
    case H5I_GROUP:
      H5Gclose(id_);
      break;
    case H5I_DATASET:
      H5Dclose(id_);
      break;
    case H5I_DATASPACE:
      H5Sclose(id_);
      break;
    case H5I_DATATYPE:
      H5Tclose(id_);
      break;
    case H5I_ATTR:
      H5Aclose(id_);
      break;
    case H5I_GENPROP_LST:
      H5Pclose(id_);
      break;
    default:
      break;
  }
  id_ = -1;
}

void quiet_errors() {
  H5Eset_auto(H5E_DEFAULT, nullptr, nullptr);
}

File::File(const std::string& path, char mode, MPI_Comm comm) : path_(path) {
  quiet_errors();
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
  if (mode == 'r') {
    file_ = Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl));
    require(file_.get() >= 0, path,
            ": cannot open as HDF5 (missing, truncated or not an HDF5 file); check the path");
  } else {
    file_ = Id(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl));
    require(file_.get() >= 0, path, ": cannot create HDF5 file; check that the folder exists ",
            "and is writable");
  }
}

bool File::exists(const std::string& obj) const {
  // Check every path component, since H5Lexists fails on a missing intermediate group.
  size_t pos = 0;
  while (true) {
    pos = obj.find('/', pos + 1);
    std::string part = obj.substr(0, pos);
    if (!part.empty() && part != "/" && H5Lexists(file_, part.c_str(), H5P_DEFAULT) <= 0)
      return false;
    if (pos == std::string::npos) return true;
  }
}

void File::ensure_groups(const std::string& name) {
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    std::string g = name.substr(0, pos);
    if (g.empty() || g == "/") continue;
    if (H5Lexists(file_, g.c_str(), H5P_DEFAULT) <= 0) {
      Id gid(H5Gcreate2(file_, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
      require(gid.get() >= 0, path_, ": cannot create group ", g);
    }
  }
}

void File::write_raw(const std::string& name, hid_t type, const void* data,
                     const std::vector<int64_t>& shape) {
  ensure_groups(name);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Id space(shape.empty() ? H5Screate(H5S_SCALAR)
                         : H5Screate_simple((int)dims.size(), dims.data(), nullptr));
  Id dset(H5Dcreate2(file_, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  require(dset.get() >= 0, path_, ": cannot create dataset ", name, " (does it already exist?)");
  require(H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, path_,
          ": writing dataset ", name, " failed (disk full or quota?)");
}

void File::write(const std::string& n, const float* d, const std::vector<int64_t>& s) {
  write_raw(n, H5T_NATIVE_FLOAT, d, s);
}
void File::write(const std::string& n, const double* d, const std::vector<int64_t>& s) {
  write_raw(n, H5T_NATIVE_DOUBLE, d, s);
}
void File::write(const std::string& n, const int32_t* d, const std::vector<int64_t>& s) {
  write_raw(n, H5T_NATIVE_INT32, d, s);
}
void File::write(const std::string& n, const int64_t* d, const std::vector<int64_t>& s) {
  write_raw(n, H5T_NATIVE_INT64, d, s);
}
void File::write(const std::string& n, const uint8_t* d, const std::vector<int64_t>& s) {
  write_raw(n, H5T_NATIVE_UINT8, d, s);
}

std::vector<int64_t> File::shape(const std::string& name) const {
  require(exists(name), path_, ": dataset ", name, " is missing; was this file written by xwin?");
  Id dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT));
  require(dset.get() >= 0, path_, ": ", name, " is not a dataset");
  Id space(H5Dget_space(dset));
  int nd = H5Sget_simple_extent_ndims(space);
  require(nd >= 0, path_, ": cannot read the shape of ", name, " (file damaged?)");
  std::vector<hsize_t> dims(nd);
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

void File::read_raw(const std::string& name, hid_t type, void* out, size_t n) const {
  size_t have = 1;
  for (int64_t d : shape(name)) have *= (size_t)d;
  require(have == n, path_, ": dataset ", name, " has ", have, " elements, expected ", n);
  Id dset(H5Dopen2(file_, name.c_str(), H5P_DEFAULT));
  require(H5Dread(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0, path_, ": reading dataset ",
          name, " failed (file truncated or damaged?)");
}

void File::read(const std::string& n, float* o, size_t c) const {
  read_raw(n, H5T_NATIVE_FLOAT, o, c);
}
void File::read(const std::string& n, double* o, size_t c) const {
  read_raw(n, H5T_NATIVE_DOUBLE, o, c);
}
void File::read(const std::string& n, int32_t* o, size_t c) const {
  read_raw(n, H5T_NATIVE_INT32, o, c);
}
void File::read(const std::string& n, int64_t* o, size_t c) const {
  read_raw(n, H5T_NATIVE_INT64, o, c);
}
void File::read(const std::string& n, uint8_t* o, size_t c) const {
  read_raw(n, H5T_NATIVE_UINT8, o, c);
}

static Id open_obj(hid_t file, const std::string& obj, const std::string& path) {
  Id o(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
  require(o.get() >= 0, path, ": object ", obj, " is missing");
  return o;
}

static void write_attr(hid_t file, const std::string& path, const std::string& obj,
                       const std::string& key, hid_t type, const void* value) {
  Id o(H5Oopen(file, obj.c_str(), H5P_DEFAULT));
  require(o.get() >= 0, path, ": object ", obj, " is missing");
  if (H5Aexists(o, key.c_str()) > 0) H5Adelete(o, key.c_str());
  Id space(H5Screate(H5S_SCALAR));
  Id attr(H5Acreate2(o, key.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT));
  require(attr.get() >= 0 && H5Awrite(attr, type, value) >= 0, path, ": cannot write attribute ",
          key, " on ", obj);
}

void File::set_attr(const std::string& obj, const std::string& key, const std::string& value) {
  // Variable-length UTF-8, which h5py reads back as str.
  Id type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  const char* p = value.c_str();
  write_attr(file_, path_, obj, key, type, &p);
}
void File::set_attr(const std::string& obj, const std::string& key, int64_t value) {
  write_attr(file_, path_, obj, key, H5T_NATIVE_INT64, &value);
}
void File::set_attr(const std::string& obj, const std::string& key, double value) {
  write_attr(file_, path_, obj, key, H5T_NATIVE_DOUBLE, &value);
}

void File::set_attr(const std::string& obj, const std::string& key, const std::vector<int64_t>& v) {
  Id o(H5Oopen(file_, obj.c_str(), H5P_DEFAULT));
  require(o.get() >= 0, path_, ": object ", obj, " is missing");
  if (H5Aexists(o, key.c_str()) > 0) H5Adelete(o, key.c_str());
  hsize_t n = v.size();
  Id space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL));
  Id attr(H5Acreate2(o, key.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT));
  require(attr.get() >= 0 && (n == 0 || H5Awrite(attr, H5T_NATIVE_INT64, v.data()) >= 0), path_,
          ": cannot write attribute ", key, " on ", obj);
}

bool File::has_attr(const std::string& obj, const std::string& key) const {
  if (!exists(obj)) return false;
  Id o = open_obj(file_, obj, path_);
  return H5Aexists(o, key.c_str()) > 0;
}

static Id open_attr(hid_t file, const std::string& path, const std::string& obj,
                    const std::string& key) {
  Id o = open_obj(file, obj, path);
  require(H5Aexists(o, key.c_str()) > 0, path, ": attribute ", key, " is missing on ", obj,
          "; was this file written by xwin?");
  return Id(H5Aopen(o, key.c_str(), H5P_DEFAULT));
}

std::string File::attr_string(const std::string& obj, const std::string& key) const {
  Id attr = open_attr(file_, path_, obj, key);
  Id type(H5Aget_type(attr));
  require(H5Tget_class(type) == H5T_STRING, path_, ": attribute ", key, " is not a string");
  if (H5Tis_variable_str(type) > 0) {
    char* s = nullptr;
    Id mem(H5Tget_native_type(type, H5T_DIR_ASCEND));
    H5Aread(attr, mem, &s);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(type);
  std::string out(n, '\0');
  H5Aread(attr, type, out.data());
  while (!out.empty() && out.back() == '\0') out.pop_back();
  return out;
}

int64_t File::attr_int(const std::string& obj, const std::string& key) const {
  Id attr = open_attr(file_, path_, obj, key);
  int64_t v = 0;
  require(H5Aread(attr, H5T_NATIVE_INT64, &v) >= 0, path_, ": attribute ", key,
          " is not an integer");
  return v;
}

double File::attr_double(const std::string& obj, const std::string& key) const {
  Id attr = open_attr(file_, path_, obj, key);
  double v = 0;
  require(H5Aread(attr, H5T_NATIVE_DOUBLE, &v) >= 0, path_, ": attribute ", key,
          " is not a number");
  return v;
}

std::vector<int64_t> File::attr_ints(const std::string& obj, const std::string& key) const {
  Id attr = open_attr(file_, path_, obj, key);
  Id space(H5Aget_space(attr));
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  std::vector<int64_t> v(n > 0 ? n : 0);
  require(v.empty() || H5Aread(attr, H5T_NATIVE_INT64, v.data()) >= 0, path_, ": attribute ", key,
          " on ", obj, " is not a list of integers");
  return v;
}

void File::flush() {
  H5Fflush(file_, H5F_SCOPE_GLOBAL);
}

}  // namespace xwin::h5
