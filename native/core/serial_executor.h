#pragma once
// One long-lived thread that runs posted jobs in order. The decoder steps on it instead of libuv's pool:
// llama.cpp's CPU backend (OpenMP) keeps a thread team per calling thread, and hopping between pool
// threads left several teams spinning against each other — 20-25% of decode throughput on 2 cores.
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

namespace core {

class SerialExecutor {
 public:
  SerialExecutor() : state_(std::make_shared<State>()) {
    std::thread([s = state_]() { run(*s); }).detach();
  }
  // Jobs already posted still run; the thread exits after the last one.
  ~SerialExecutor() { stop(); }
  SerialExecutor(const SerialExecutor &) = delete;
  SerialExecutor &operator=(const SerialExecutor &) = delete;

  void post(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->jobs.push_back(std::move(job));
    }
    state_->wake.notify_one();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->stopping = true;
    }
    state_->wake.notify_one();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<std::function<void()>> jobs;
    bool stopping = false;
  };

  // The thread owns its state (shared_ptr), so it may outlive the executor object.
  static void run(State &s) {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(s.mutex);
        s.wake.wait(lock, [&] { return s.stopping || !s.jobs.empty(); });
        if (s.jobs.empty()) return;
        job = std::move(s.jobs.front());
        s.jobs.pop_front();
      }
      job();  // jobs catch their own exceptions
    }
  }

  std::shared_ptr<State> state_;
};

}  // namespace core
