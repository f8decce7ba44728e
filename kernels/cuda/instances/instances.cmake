# kernels/cuda/instances/instances.cmake: THE list of compiled (head dim, dtype) pairs of the CUDA
# backend, and the files generated from it. One entry "D:dtype" per pair; for each:
#   * the portable mma.sync kernel (CudaKernel::kMmaSync) with 64- and 128-row tiles (64 only
#     for D = 256: the 256-wide O accumulator takes the registers of two row atoms),
#   * for D <= 128, when the architectures include sm_90a, the wgmma kernel (kWgmmaTma) with 64-
#     and 128-row tiles.
# Generated into the build tree: one instantiation file per (kernel, D, dtype), so they build in
# parallel, and hbsa_cuda_instances.inc, the X-macro list that feeds the dispatch table
# (launch/dispatch.cu), the kernel choice (heuristics.h InstanceCompiled) and the head dims the
# service reports (FastHeadDims, GetCapabilities). Request head dims are padded up to the next
# compiled one (CompiledHeadDim).
set(HBSA_CUDA_INSTANCES "64:fp16;64:bf16;128:fp16;128:bf16;256:fp16;256:bf16" CACHE STRING
    "Compiled (head dim, dtype) pairs of the CUDA backend: D:fp16|bf16, D in 64, 128, 256")

# hbsa_cuda_generate_instances(OUT_DIR WITH_WGMMA MMA_SYNC_SOURCES WGMMA_SOURCES): writes the
# files and returns the two source lists.
function(hbsa_cuda_generate_instances out_dir with_wgmma mma_sources_var wgmma_sources_var)
  set(here ${CMAKE_CURRENT_FUNCTION_LIST_DIR})
  set(inc "// Generated from HBSA_CUDA_INSTANCES by kernels/cuda/instances/instances.cmake: do not edit.\n")
  set(mma_sources "")
  set(wgmma_sources "")
  foreach(entry IN LISTS HBSA_CUDA_INSTANCES)
    string(REPLACE ":" ";" parts "${entry}")
    list(LENGTH parts n)
    if(NOT n EQUAL 2)
      message(FATAL_ERROR "HBSA_CUDA_INSTANCES: entry '${entry}' is not D:dtype")
    endif()
    list(GET parts 0 HBSA_D)
    list(GET parts 1 HBSA_DTYPE)
    if(HBSA_DTYPE STREQUAL "fp16")
      set(HBSA_CTYPE "__half")
      set(HBSA_ENUM "kFloat16")
    elseif(HBSA_DTYPE STREQUAL "bf16")
      set(HBSA_CTYPE "__nv_bfloat16")
      set(HBSA_ENUM "kBFloat16")
    else()
      message(FATAL_ERROR "HBSA_CUDA_INSTANCES: dtype '${HBSA_DTYPE}' of '${entry}' is not fp16 or bf16")
    endif()
    if(NOT HBSA_D MATCHES "^(64|128|256)$")
      message(FATAL_ERROR "HBSA_CUDA_INSTANCES: head dim '${HBSA_D}' of '${entry}' is not 64, 128 or 256")
    endif()
    if(HBSA_D EQUAL 256)
      set(HBSA_TILES "64")
    else()
      set(HBSA_TILES "64;128")
    endif()
    set(HBSA_LINES "")
    foreach(m IN LISTS HBSA_TILES)
      string(APPEND HBSA_LINES "template LaunchResult LaunchMmaSync<${HBSA_CTYPE}, ${HBSA_D}, ${m}, 64>(const KernelParams&, cudaStream_t);\n")
      string(APPEND inc "HBSA_MMA_SYNC_INSTANCE(${HBSA_CTYPE}, ${HBSA_ENUM}, ${HBSA_D}, ${m})\n")
    endforeach()
    configure_file(${here}/mma_sync_instance.cu.in ${out_dir}/mma_sync_d${HBSA_D}_${HBSA_DTYPE}.cu @ONLY)
    list(APPEND mma_sources ${out_dir}/mma_sync_d${HBSA_D}_${HBSA_DTYPE}.cu)
    if(with_wgmma AND HBSA_D LESS_EQUAL 128)
      set(HBSA_LINES "")
      foreach(m 64 128)
        string(APPEND HBSA_LINES "template LaunchResult LaunchWgmma<${HBSA_CTYPE}, ${HBSA_D}, ${m}>(const KernelParams&, cudaStream_t);\n")
        string(APPEND inc "HBSA_WGMMA_INSTANCE(${HBSA_CTYPE}, ${HBSA_ENUM}, ${HBSA_D}, ${m})\n")
      endforeach()
      configure_file(${here}/wgmma_instance.cu.in ${out_dir}/wgmma_d${HBSA_D}_${HBSA_DTYPE}.cu @ONLY)
      list(APPEND wgmma_sources ${out_dir}/wgmma_d${HBSA_D}_${HBSA_DTYPE}.cu)
    endif()
  endforeach()
  # Rewritten only when the content changes, so an unchanged list rebuilds nothing.
  file(CONFIGURE OUTPUT ${out_dir}/hbsa_cuda_instances.inc CONTENT "${inc}")
  set(${mma_sources_var} ${mma_sources} PARENT_SCOPE)
  set(${wgmma_sources_var} ${wgmma_sources} PARENT_SCOPE)
endfunction()
