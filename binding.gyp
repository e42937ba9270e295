{
  "targets": [
    {
      "target_name": "sevkit",
      "sources": [
        "native/src/addon.cc",
        "native/src/commands.cc",
        "native/src/cpuid.cc",
        "native/src/js_errors.cc",
        "native/src/kvm_device.cc",
        "native/src/sev_device.cc",
        "native/src/sev_guest.cc",
        "native/src/sev_guest_device.cc",
        "native/src/tables.cc"
      ],
      "include_dirs": [
        "native/include"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NAPI_CPP_EXCEPTIONS",
        "_FILE_OFFSET_BITS=64",
        "_LARGEFILE_SOURCE",
        "_GNU_SOURCE"
      ],
      "cflags": [
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-fvisibility=hidden",
        "-fexceptions"
      ],
      "cflags_cc!": [
        "-fno-exceptions",
        "-fno-rtti",
        "-std=gnu++17"
      ]
    },
    {
      "target_name": "sevkit_sim_preload",
      "type": "shared_library",
      "product_prefix": "",
      "sources": [
        "native/sim/sev_preload.c"
      ],
      "include_dirs": [
        "native/include"
      ],
      "cflags": [
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra",
        "-U_FORTIFY_SOURCE"
      ],
      "libraries": [
        "-ldl",
        "-lpthread"
      ]
    }
  ]
}
