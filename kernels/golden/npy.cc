// npy.cc: minimal reader/writer for NumPy .npy files (format versions 1.0-3.0, C order,
// little-endian), enough for the golden format.
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "hbsa/golden.h"

namespace hbsa::golden {

size_t NpyArray::ItemSize() const {
  if (descr.size() < 3) return 0;
  return static_cast<size_t>(std::stoul(descr.substr(2)));
}

int64_t NpyArray::NumElements() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

absl::StatusOr<NpyArray> LoadNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  char magic[8];
  if (!f.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a .npy file"));
  }
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t n = 0;
    f.read(reinterpret_cast<char*>(&n), 2);
    header_len = n;
  } else {
    f.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, '\0');
  if (!f.read(header.data(), header_len)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated header"));
  }
  NpyArray a;
  auto field = [&](const std::string& key) -> std::string {
    const size_t p = header.find("'" + key + "'");
    if (p == std::string::npos) return "";
    const size_t colon = header.find(':', p);
    return header.substr(colon + 1);
  };
  std::string d = field("descr");
  const size_t q1 = d.find('\''), q2 = d.find('\'', q1 + 1);
  if (q1 == std::string::npos || q2 == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no descr in header"));
  }
  a.descr = d.substr(q1 + 1, q2 - q1 - 1);
  if (a.descr[0] == '>') return absl::InvalidArgumentError(absl::StrCat(path, ": big-endian data"));
  if (field("fortran_order").find("True") < field("fortran_order").find(',')) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": Fortran order is not supported"));
  }
  std::string s = field("shape");
  const size_t l = s.find('('), r = s.find(')');
  std::stringstream ss(s.substr(l + 1, r - l - 1));
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.find_first_of("0123456789") != std::string::npos) a.shape.push_back(std::stoll(tok));
  }
  const size_t bytes = static_cast<size_t>(a.NumElements()) * a.ItemSize();
  a.data.resize(bytes);
  if (bytes > 0 && !f.read(reinterpret_cast<char*>(a.data.data()), static_cast<std::streamsize>(bytes))) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated data, expected ", bytes, " bytes"));
  }
  return a;
}

absl::Status SaveNpy(const std::string& path, const std::string& descr,
                     const std::vector<int64_t>& shape, const void* data, size_t bytes) {
  std::string shp = "(";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&shp, shape[i], shape.size() == 1 ? "," : (i + 1 < shape.size() ? ", " : ""));
  shp += ")";
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': ", shp, ", }");
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  if (!f) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot write"));
  const uint16_t n = static_cast<uint16_t>(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&n), 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!f) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace hbsa::golden
