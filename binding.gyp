# node-gyp build of the same addon as CMakeLists.txt, for node-gyp users.
# It compiles native/ and links the llama.cpp static libraries (llama, ggml, llama-common) that the CMake build produced
# (run `npm ci` or `npm run build:addon` first). CPU backend only; CUDA builds use CMake.
#   npx node-gyp rebuild                      -> build/Release/llama_addon.node
#   npx node-gyp rebuild -- -Dllama_build_dir=/other/build-cmake
{
  "variables": {
    "llama_build_dir%": "<(module_root_dir)/build-cmake",
    "llama_cpp_dir%": "<(module_root_dir)/vendor/llama.cpp"
  },
  "targets": [
    {
      "target_name": "llama_addon",
      "variables": {
        # As in CMakeLists.txt: our own C++ warning-free; llama.cpp's and node-addon-api's headers are system headers.
        "project_warnings": ["-Wall", "-Wextra", "-Wpedantic", "-Werror"],
        "system_includes": [
          "-isystem", "<(module_root_dir)/<!(node -p \"require('node-addon-api').include_dir\")",
          "-isystem", "<(llama_cpp_dir)/include",
          "-isystem", "<(llama_cpp_dir)/ggml/include",
          "-isystem", "<(llama_cpp_dir)/common",
          "-isystem", "<(llama_cpp_dir)/vendor"
        ]
      },
      "sources": [
        "<!@(node -p \"require('fs').readdirSync('native/core').filter(f=>f.endsWith('.cpp')).map(f=>'native/core/'+f).join(' ')\")",
        "<!@(node -p \"require('fs').readdirSync('native/binding').filter(f=>f.endsWith('.cpp')).map(f=>'native/binding/'+f).join(' ')\")"
      ],
      "include_dirs": ["native/core"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "<@(project_warnings)", "<@(system_includes)"],
      "libraries": [
        "-Wl,--start-group",
        "<(llama_build_dir)/llama.cpp/common/libllama-common.a",
        "<(llama_build_dir)/llama.cpp/common/libllama-common-base.a",
        "<(llama_build_dir)/llama.cpp/vendor/cpp-httplib/libcpp-httplib.a",
        "<(llama_build_dir)/llama.cpp/src/libllama.a",
        "<(llama_build_dir)/llama.cpp/ggml/src/libggml.a",
        "<(llama_build_dir)/llama.cpp/ggml/src/libggml-cpu.a",
        "<(llama_build_dir)/llama.cpp/ggml/src/libggml-base.a",
        "-Wl,--end-group",
        "-fopenmp",
        "-lpthread"
      ],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "OTHER_CPLUSPLUSFLAGS": ["<@(project_warnings)", "<@(system_includes)"],
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0"
          },
          "libraries!": ["-Wl,--start-group", "-Wl,--end-group", "-fopenmp"]
        }]
      ]
    }
  ]
}
