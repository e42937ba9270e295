// Layout and constant tables exported to JS (`layout`, `constants`).
#ifndef SEVKIT_TABLES_H
#define SEVKIT_TABLES_H

#include <napi.h>

namespace sevkit {

// { sev_user_data_status: { size: 12, offsets: { api_major: 0, ... } }, ... }
Napi::Object LayoutTable(Napi::Env env);
// { SEV_ISSUE_CMD, SEV_FW_BLOB_MAX_SIZE, commands: {...}, status: {SEV_RET_*: n}, ... }
Napi::Object ConstantTable(Napi::Env env);

}  // namespace sevkit

#endif  // SEVKIT_TABLES_H
