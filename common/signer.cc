#include "common/signer.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace vigil {

absl::StatusOr<Signer> Signer::FromFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("signing key: cannot read ", path));
  std::string key;
  char buffer[4097];
  in.read(buffer, sizeof(buffer));
  key.assign(buffer, static_cast<size_t>(in.gcount()));
  if (key.size() > 4096) return absl::InvalidArgumentError(absl::StrCat("signing key ", path, ": over 4 KiB"));
  if (key.size() < kMinSigningKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("signing key ", path, ": ", key.size(), " bytes; at least ",
                                                   kMinSigningKeyBytes, " are needed (head -c 32 /dev/urandom > ",
                                                   path, ")"));
  }
  return Signer(std::move(key));
}

std::string Signer::Sign(absl::string_view data) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &size);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(mac), size));
}

bool Signer::Verify(absl::string_view data, absl::string_view signature) const {
  const std::string expected = Sign(data);
  return signature.size() == expected.size() && CRYPTO_memcmp(expected.data(), signature.data(), expected.size()) == 0;
}

absl::Status CreateSigningKeyIfAbsent(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) return absl::OkStatus();
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  unsigned char key[kMinSigningKeyBytes];
  if (RAND_bytes(key, sizeof(key)) != 1) return absl::InternalError("signing key: no randomness to make one");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("signing key: cannot create ", path));
  const bool written = ::write(fd, key, sizeof(key)) == static_cast<ssize_t>(sizeof(key));
  ::close(fd);
  if (!written) return absl::UnavailableError(absl::StrCat("signing key: cannot write ", path));
  return absl::OkStatus();
}

}  // namespace vigil
