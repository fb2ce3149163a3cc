#pragma once
// Holding back incomplete UTF-8 so a streamed piece never ends inside a character.
#include <cstddef>
#include <string>

namespace core {

// Length of the longest prefix of `bytes` that does not end inside a multi-byte sequence that could
// still be completed by more bytes. Invalid bytes are not held back (the reader replaces them).
size_t completeUtf8Prefix(const std::string &bytes);

}  // namespace core
