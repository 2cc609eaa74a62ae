// Placeholder filled by the WASM kernels work: registers the project's own gradient kernels.
export function registerWasmKernels(): void {}
