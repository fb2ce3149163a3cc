#pragma once
// A slot's KV as bytes: a sequence's llama.cpp state appended in place (appendSeqState, also what checkpoints and
// slot copies use), and the container BatchDecoder::saveState() writes and restoreState() reads (packState,
// unpackState: the sequence state with the slot's sliding-window checkpoints). saveState() and restoreState()
// themselves are in slot_state.cpp.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "checkpoints.h"
#include "llama.h"

namespace core {

// Appends sequence `seq`'s state (llama_state_seq_get_data_ext with `flags`) to `out`, written in place; returns its
// size, 0 when llama.cpp could not write it (then `out` is as it was).
size_t appendSeqState(llama_context *ctx, std::vector<uint8_t> &out, llama_seq_id seq, llama_state_seq_flags flags);

// The container: magic, the checkpoints (count, then each one's token count, size and bytes), then the sequence
// state (size and bytes). Host byte order, as llama.cpp's sequence state inside it.
//
// Appends a container of `checkpoints` and the sequence state that writeSeq appends to the buffer in place (no copy:
// it may be gigabytes), returning its size. False, and `out` holds a partial container, when writeSeq returns 0.
bool packState(std::vector<uint8_t> &out, const std::vector<Checkpoint> &checkpoints,
               const std::function<uint64_t(std::vector<uint8_t> &)> &writeSeq);

// A container read in place: its parts are views into the buffer unpackState() was given.
struct StateView {
  struct Part {
    const uint8_t *data = nullptr;
    uint64_t size = 0;
  };
  std::vector<std::pair<int32_t, Part>> checkpoints;  // token count, bytes
  Part seq;
  size_t trailing = 0;  // bytes after the sequence state (none in a container packState wrote)
};

// Reads a container for a state holding nTokens tokens. False when it is not one packState() wrote: cut short, a
// wrong magic, a size past its end, checkpoints not ascending within (0, nTokens], an empty sequence state.
bool unpackState(const std::vector<uint8_t> &data, size_t nTokens, StateView &out);

}  // namespace core
