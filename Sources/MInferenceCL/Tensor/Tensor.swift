/// A tensor in host memory: a shape, an element type and its little-endian bytes in C order.
public struct Tensor: Sendable, Equatable {
    public var shape: [Int]
    public var dtype: DType
    /// Raw element bytes, `elementCount * dtype.byteCount` of them.
    public var bytes: [UInt8]

    public var elementCount: Int { shape.reduce(1, *) }

    public init(shape: [Int], dtype: DType, bytes: [UInt8]) {
        precondition(shape.allSatisfy { $0 >= 0 } && shape.reduce(1, *) * dtype.byteCount == bytes.count,
                     "tensor bytes do not match shape \(shape) and dtype \(dtype)")
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    /// A tensor holding `values` rounded to `dtype`.
    public init(shape: [Int], dtype: DType, values: [Float]) {
        precondition(shape.reduce(1, *) == values.count, "\(values.count) values do not fill shape \(shape)")
        var bytes = [UInt8](repeating: 0, count: values.count * dtype.byteCount)
        bytes.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f32:
                for (i, x) in values.enumerated() { raw.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .f16:
                for (i, x) in values.enumerated() { raw.storeBytes(of: Float16(x).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            case .bf16:
                for (i, x) in values.enumerated() { raw.storeBytes(of: BFloat16Bits.fromFloat(x).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        }
        self.init(shape: shape, dtype: dtype, bytes: bytes)
    }

    /// The elements widened to Float.
    public func floats() -> [Float] {
        let n = elementCount
        return bytes.withUnsafeBytes { raw in
            switch dtype {
            case .f32:
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
            case .f16:
                return (0..<n).map { Float(Float16(bitPattern: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))) }
            case .bf16:
                return (0..<n).map { BFloat16Bits.toFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) }
            }
        }
    }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ shape: [Int]) -> Tensor {
        precondition(shape.reduce(1, *) == elementCount, "cannot reshape \(self.shape) to \(shape)")
        return Tensor(shape: shape, dtype: dtype, bytes: bytes)
    }

    /// The same values stored as `dtype`.
    public func converted(to dtype: DType) -> Tensor {
        dtype == self.dtype ? self : Tensor(shape: shape, dtype: dtype, values: floats())
    }

    /// Index of the first non-finite element (NaN or ±Inf), as a multi-index, or nil.
    public func firstNonFinite() -> [Int]? {
        let values = floats()
        guard let flat = values.firstIndex(where: { !$0.isFinite }) else { return nil }
        var index = [Int](repeating: 0, count: shape.count)
        var rest = flat
        for axis in shape.indices.reversed() {
            index[axis] = shape[axis] == 0 ? 0 : rest % shape[axis]
            rest /= max(shape[axis], 1)
        }
        return index
    }
}
