#pragma once
// TokenCache: the tokens a decoder slot's KV holds, with what of them changed since the slot's snapshot was last
// published (batch_decoder.h, Threading), so publishing copies only those.
#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "llama.h"

namespace core {

// The tokens a slot's KV holds, at positions 0..size()-1. It remembers how long a prefix is unchanged since the
// last publishTo(), so bringing the published copy up to date costs only the tokens that changed.
class TokenCache {
 public:
  const std::vector<llama_token> &tokens() const { return tokens_; }
  size_t size() const { return tokens_.size(); }
  llama_token operator[](size_t i) const { return tokens_[i]; }

  void push_back(llama_token t) { tokens_.push_back(t); }
  template <typename It>
  void append(It first, It last) {
    tokens_.insert(tokens_.end(), first, last);
  }
  void truncate(size_t n) {
    if (n >= tokens_.size()) return;
    tokens_.resize(n);
    changedFrom(n);
  }
  void erase(size_t from, size_t to) {
    tokens_.erase(tokens_.begin() + static_cast<std::ptrdiff_t>(from),
                  tokens_.begin() + static_cast<std::ptrdiff_t>(to));
    changedFrom(from);
  }
  void assign(std::vector<llama_token> tokens) {
    tokens_ = std::move(tokens);
    changedFrom(0);
  }
  void clear() { assign({}); }

  // `copy` equals tokens() as of the last call; makes it equal again.
  void publishTo(std::vector<llama_token> &copy) {
    copy.resize(unchanged_);
    copy.insert(copy.end(), tokens_.begin() + static_cast<std::ptrdiff_t>(unchanged_), tokens_.end());
    unchanged_ = tokens_.size();
  }

 private:
  void changedFrom(size_t i) { unchanged_ = std::min(unchanged_, i); }

  std::vector<llama_token> tokens_;
  size_t unchanged_ = 0;
};

}  // namespace core
