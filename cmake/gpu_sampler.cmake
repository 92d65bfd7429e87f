# GPU sampling: GpuSampler (src/gpu/sampler_gpu.cu), the KV-cache Generator on one GPU, over the
# kernels of xwin_cuda; its tests (label gpu: skipped, exit 77, without a CUDA device) and its
# benchmark (run by hand). Included from the top-level CMakeLists.txt when XWIN_CUDA is on.
add_library(xwin_gpu_sampler STATIC ${CMAKE_SOURCE_DIR}/src/gpu/sampler_gpu.cu)
set_target_properties(xwin_gpu_sampler PROPERTIES CUDA_STANDARD 17 CUDA_STANDARD_REQUIRED ON)
target_link_libraries(xwin_gpu_sampler PUBLIC xwin_cuda xwin_lib)
target_compile_options(xwin_gpu_sampler PRIVATE "$<$<COMPILE_LANGUAGE:CUDA>:${_xwin_cuda_flags}>")
target_compile_definitions(xwin_gpu_sampler PRIVATE $<$<CONFIG:Debug>:XWIN_CUDA_SYNC_CHECK>)

find_package(GTest REQUIRED)
add_executable(xwin_gpu_sampler_tests ${CMAKE_SOURCE_DIR}/tests/gpu/test_sampler_gpu.cpp
                                      ${CMAKE_SOURCE_DIR}/tests/gpu/main.cpp)
target_link_libraries(xwin_gpu_sampler_tests PRIVATE xwin_gpu_sampler GTest::gtest)
target_compile_options(xwin_gpu_sampler_tests PRIVATE -Wall -Wextra)
add_test(NAME xwin_gpu_sampler_tests COMMAND xwin_gpu_sampler_tests)
set_tests_properties(xwin_gpu_sampler_tests PROPERTIES LABELS gpu SKIP_RETURN_CODE 77)

add_executable(xwin_gpu_sample_bench ${CMAKE_SOURCE_DIR}/bench/gpu/sample_bench_gpu.cpp)
target_link_libraries(xwin_gpu_sample_bench PRIVATE xwin_gpu_sampler)
target_compile_options(xwin_gpu_sample_bench PRIVATE -Wall -Wextra)
