import COpenCL

/// A tensor in device memory: a buffer with the shape and element type of its contents.
public struct DeviceTensor: Sendable {
    public let buffer: DeviceBuffer
    public let shape: [Int]
    public let dtype: DType

    public var elementCount: Int { shape.reduce(1, *) }
    /// The OpenCL buffer holding the elements (owned by `buffer`).
    public var clMem: cl_mem { buffer.clMem }

    /// Allocates an uninitialised tensor. A shape with a negative entry, or too large to
    /// address, is refused with `AttentionError.shape`.
    public init(context: ComputeContext, shape: [Int], dtype: DType, label: String = "tensor") throws {
        self.shape = shape
        self.dtype = dtype
        let bytes = shape.reduce(dtype.byteCount) { total, n in total.multipliedReportingOverflow(by: n).overflow ? -1 : total * n }
        guard shape.allSatisfy({ $0 >= 0 }), bytes >= 0 else {
            throw AttentionError.shape("\(label) of shape \(shape) cannot be allocated: negative or too large to address")
        }
        self.buffer = try DeviceBuffer(context: context, byteCount: bytes, label: label)
    }

    /// Uploads `tensor`.
    public init(context: ComputeContext, copying tensor: Tensor, label: String = "tensor") throws {
        try self.init(context: context, shape: tensor.shape, dtype: tensor.dtype, label: label)
        try tensor.bytes.withUnsafeBytes { try buffer.write($0) }
    }

    /// Copies the tensor back to the host.
    public func download() throws -> Tensor {
        var bytes = [UInt8](repeating: 0, count: elementCount * dtype.byteCount)
        try bytes.withUnsafeMutableBytes { try buffer.read(into: $0) }
        return Tensor(unchecked: shape, dtype: dtype, bytes: bytes)
    }

    /// Fills every element with NaN (tests poison outputs before a run).
    public func poison() throws {
        switch dtype {
        case .f32: try buffer.fill(pattern: 0x7fc0_0000)
        case .f16: try buffer.fill(pattern: 0x7e00_7e00)
        case .bf16: try buffer.fill(pattern: 0x7fc0_7fc0)
        }
    }
}
