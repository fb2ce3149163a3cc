#pragma once
// What one environment (the main thread, or one worker_thread) holds of the addon, kept as its napi instance data:
// each environment loads the addon anew, and its teardown must free its own models only, never another's.
#include <napi.h>

#include <memory>
#include <unordered_set>

namespace binding {

class AddonModel;

// Models of one environment that JS has not freed; touched on that environment's JS thread only. Shared with each
// model, so neither the data nor a model depends on which of them the teardown finalizes first.
using LiveModels = std::unordered_set<AddonModel *>;

struct AddonData {
  Napi::FunctionReference modelClass;    // for instanceof checks (AddonModel::from)
  Napi::FunctionReference decoderClass;  // to wrap a decoder created off the JS thread (BatchDecoder.create)
  std::shared_ptr<LiveModels> liveModels = std::make_shared<LiveModels>();
};

// Creates the environment's data (at module init) and registers the cleanup hook that disposes its live models.
AddonData &initAddonData(Napi::Env env);
// The data initAddonData created for this environment.
AddonData &addonData(Napi::Env env);

}  // namespace binding
