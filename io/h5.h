// Thin RAII layer over the HDF5 C API: files, datasets and attributes with errors that name the
// file and object. Serial access (one rank) unless a file is opened with an MPI communicator.
#pragma once
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace xwin::h5 {

// Closes any HDF5 identifier on scope exit.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  Id(Id&& o) noexcept : id_(o.id_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept;
  ~Id();
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }

 private:
  hid_t id_ = -1;
};

class File {
 public:
  // mode: 'r' read-only, 'w' create/truncate. comm != MPI_COMM_NULL opens it for parallel I/O.
  File(const std::string& path, char mode, MPI_Comm comm = MPI_COMM_NULL);
  const std::string& path() const { return path_; }
  hid_t id() const { return file_.get(); }

  bool exists(const std::string& obj) const;
  // Creates intermediate groups as needed.
  void write(const std::string& name, const float* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const double* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const int32_t* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const int64_t* data, const std::vector<int64_t>& shape);
  void write(const std::string& name, const uint8_t* data, const std::vector<int64_t>& shape);
  std::vector<int64_t> shape(const std::string& name) const;
  // Reads a whole dataset, converting to the requested type; checks the element count.
  void read(const std::string& name, float* out, size_t n) const;
  void read(const std::string& name, double* out, size_t n) const;
  void read(const std::string& name, int32_t* out, size_t n) const;
  void read(const std::string& name, int64_t* out, size_t n) const;
  void read(const std::string& name, uint8_t* out, size_t n) const;
  template <typename T>
  std::vector<T> read_all(const std::string& name) const {
    size_t n = 1;
    for (int64_t d : shape(name)) n *= (size_t)d;
    std::vector<T> v(n);
    read(name, v.data(), n);
    return v;
  }

  // Attributes on an object ("/" for the file).
  void set_attr(const std::string& obj, const std::string& key, const std::string& value);
  void set_attr(const std::string& obj, const std::string& key, int64_t value);
  void set_attr(const std::string& obj, const std::string& key, double value);
  void set_attr(const std::string& obj, const std::string& key, const std::vector<int64_t>& v);
  bool has_attr(const std::string& obj, const std::string& key) const;
  std::string attr_string(const std::string& obj, const std::string& key) const;
  int64_t attr_int(const std::string& obj, const std::string& key) const;
  double attr_double(const std::string& obj, const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& obj, const std::string& key) const;

  void flush();

 private:
  std::string path_;
  Id file_;
  void ensure_groups(const std::string& name);
  void write_raw(const std::string& name, hid_t type, const void* data,
                 const std::vector<int64_t>& shape);
  void read_raw(const std::string& name, hid_t type, void* out, size_t n) const;
};

// Silences HDF5's own error stack printing; xwin reports errors itself.
void quiet_errors();

}  // namespace xwin::h5
