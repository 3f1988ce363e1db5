import MInferenceCL

/// How a model's products (the Q/K/V/O, MLP and LM-head matrix products) run.
public enum ProductPath: String, Sendable, CaseIterable {
    /// fp32 activations and weights through CLBlast's SGEMM: every OpenCL device (the portable path,
    /// and the faster one on CPUs).
    case clblast
    /// fp16 activations and weights, fp32 accumulation, on NVIDIA tensor cores (mma.sync,
    /// CLKernels/linear_nv_mma.cl): compute capability 8.0 and later.
    case tensorCores = "tensor-cores"

    /// The device's choice: tensor cores where the attention kernels have a tensor-core path
    /// (NVIDIA, compute capability >= 8.0), CLBlast elsewhere.
    public static func preferred(for context: ComputeContext) -> ProductPath {
        context.tensorCorePath == .portable ? .clblast : .tensorCores
    }

    /// Whether `context`'s device can run this path.
    public func isAvailable(on context: ComputeContext) -> Bool {
        self == .clblast || context.tensorCorePath != .portable
    }

    /// The element type of the products' inputs (activations and weights).
    public var inputDType: DType { self == .clblast ? .f32 : .f16 }
}
