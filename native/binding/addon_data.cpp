#include "addon_data.h"

#include "AddonModel.h"

namespace binding {

AddonData &initAddonData(Napi::Env env) {
  auto *data = new AddonData();
  env.SetInstanceData(data);  // the environment deletes it at teardown
  env.AddCleanupHook([live = data->liveModels]() {
    for (AddonModel *m : *live) m->dispose();
  });
  return *data;
}

AddonData &addonData(Napi::Env env) {
  return *env.GetInstanceData<AddonData>();
}

}  // namespace binding
