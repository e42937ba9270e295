// Sizes/offsets of the vendored structs and the numeric constants, exported so
// the TypeScript decoders can prove at test time that they read the same bytes
// the kernel (and the simulator shim) write.
#include "tables.h"

#include <cstddef>

#include "kvm_device.h"
#include "sev_device.h"
#include "sev_uapi.h"

namespace sevkit {
namespace {

#define SEVKIT_FIELD(obj, type, field) obj.Set(#field, Napi::Number::New(env, offsetof(struct type, field)))

Napi::Object Struct(Napi::Env env, size_t size, Napi::Object offsets) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("size", Napi::Number::New(env, static_cast<double>(size)));
  o.Set("offsets", offsets);
  return o;
}

}  // namespace

Napi::Object LayoutTable(Napi::Env env) {
  Napi::Object t = Napi::Object::New(env);
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_issue_cmd, cmd);
    SEVKIT_FIELD(f, sevkit_issue_cmd, data);
    SEVKIT_FIELD(f, sevkit_issue_cmd, error);
    t.Set("sev_issue_cmd", Struct(env, sizeof(sevkit_issue_cmd), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_status, api_major);
    SEVKIT_FIELD(f, sevkit_user_data_status, api_minor);
    SEVKIT_FIELD(f, sevkit_user_data_status, state);
    SEVKIT_FIELD(f, sevkit_user_data_status, flags);
    SEVKIT_FIELD(f, sevkit_user_data_status, build);
    SEVKIT_FIELD(f, sevkit_user_data_status, guest_count);
    t.Set("sev_user_data_status", Struct(env, sizeof(sevkit_user_data_status), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_pek_csr, address);
    SEVKIT_FIELD(f, sevkit_user_data_pek_csr, length);
    t.Set("sev_user_data_pek_csr", Struct(env, sizeof(sevkit_user_data_pek_csr), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_pek_cert_import, pek_cert_address);
    SEVKIT_FIELD(f, sevkit_user_data_pek_cert_import, pek_cert_len);
    SEVKIT_FIELD(f, sevkit_user_data_pek_cert_import, oca_cert_address);
    SEVKIT_FIELD(f, sevkit_user_data_pek_cert_import, oca_cert_len);
    t.Set("sev_user_data_pek_cert_import", Struct(env, sizeof(sevkit_user_data_pek_cert_import), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_pdh_cert_export, pdh_cert_address);
    SEVKIT_FIELD(f, sevkit_user_data_pdh_cert_export, pdh_cert_len);
    SEVKIT_FIELD(f, sevkit_user_data_pdh_cert_export, cert_chain_address);
    SEVKIT_FIELD(f, sevkit_user_data_pdh_cert_export, cert_chain_len);
    t.Set("sev_user_data_pdh_cert_export", Struct(env, sizeof(sevkit_user_data_pdh_cert_export), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_get_id, socket1);
    SEVKIT_FIELD(f, sevkit_user_data_get_id, socket2);
    t.Set("sev_user_data_get_id", Struct(env, sizeof(sevkit_user_data_get_id), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_get_id2, address);
    SEVKIT_FIELD(f, sevkit_user_data_get_id2, length);
    t.Set("sev_user_data_get_id2", Struct(env, sizeof(sevkit_user_data_get_id2), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, api_major);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, api_minor);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, state);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, rmp_flags);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, build_id);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, flags);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, guest_count);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, current_tcb_version);
    SEVKIT_FIELD(f, sevkit_user_data_snp_status, reported_tcb_version);
    t.Set("sev_user_data_snp_status", Struct(env, sizeof(sevkit_user_data_snp_status), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_snp_config, reported_tcb);
    SEVKIT_FIELD(f, sevkit_user_data_snp_config, flags);
    SEVKIT_FIELD(f, sevkit_user_data_snp_config, rsvd1);
    t.Set("sev_user_data_snp_config", Struct(env, sizeof(sevkit_user_data_snp_config), f));
  }
  {
    Napi::Object f = Napi::Object::New(env);
    SEVKIT_FIELD(f, sevkit_user_data_snp_vlek_load, len);
    SEVKIT_FIELD(f, sevkit_user_data_snp_vlek_load, vlek_wrapped_version);
    SEVKIT_FIELD(f, sevkit_user_data_snp_vlek_load, rsvd);
    SEVKIT_FIELD(f, sevkit_user_data_snp_vlek_load, vlek_wrapped_address);
    t.Set("sev_user_data_snp_vlek_load", Struct(env, sizeof(sevkit_user_data_snp_vlek_load), f));
  }
  return t;
}

Napi::Object ConstantTable(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("SEV_ISSUE_CMD", Napi::Number::New(env, static_cast<double>(SEVKIT_SEV_ISSUE_CMD)));
  c.Set("SEV_FW_BLOB_MAX_SIZE", Napi::Number::New(env, SEVKIT_FW_BLOB_MAX_SIZE));
  c.Set("SEV_CERT_SIZE", Napi::Number::New(env, SEVKIT_CERT_SIZE));
  c.Set("KVM_GET_API_VERSION", Napi::Number::New(env, static_cast<double>(SEVKIT_KVM_GET_API_VERSION)));

  Napi::Object cmds = Napi::Object::New(env);
  Napi::Object access = Napi::Object::New(env);
  for (uint32_t id = 0; id < SEVKIT_SEV_MAX; id++) {
    const char* n = CommandName(id);
    if (n == nullptr) continue;
    cmds.Set(n, Napi::Number::New(env, id));
    const Access a = AccessFor(id);
    access.Set(n, Napi::String::New(env, a == Access::ReadOnly    ? "O_RDONLY"
                                          : a == Access::ReadWrite ? "O_RDWR"
                                                                   : "O_RDWR|fallback:O_RDONLY"));
  }
  cmds.Set("SEV_MAX", Napi::Number::New(env, SEVKIT_SEV_MAX));
  c.Set("commands", cmds);
  c.Set("openMode", access);

  Napi::Object ret = Napi::Object::New(env);
  ret.Set("SEV_RET_NO_FW_CALL", Napi::Number::New(env, SEVKIT_RET_NO_FW_CALL));
  for (int code = 0; code < SEVKIT_RET_MAX; code++) {
    const char* n = sevkit_ret_name(code);
    if (n != nullptr) ret.Set(n, Napi::Number::New(env, code));
  }
  c.Set("status", ret);

  Napi::Object states = Napi::Object::New(env);
  states.Set("UNINIT", Napi::Number::New(env, SEVKIT_STATE_UNINIT));
  states.Set("INIT", Napi::Number::New(env, SEVKIT_STATE_INIT));
  states.Set("WORKING", Napi::Number::New(env, SEVKIT_STATE_WORKING));
  c.Set("states", states);

  c.Set("SEV_STATUS_FLAGS_OWNER", Napi::Number::New(env, SEVKIT_STATUS_FLAGS_OWNER));
  c.Set("SEV_STATUS_FLAGS_CONFIG_ES", Napi::Number::New(env, SEVKIT_STATUS_FLAGS_CONFIG_ES));
  return c;
}

}  // namespace sevkit
