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

    /// Index of the first non-finite element (NaN or ±Inf), as a multi-index, or nil. Reads the
    /// exponent bits in place (no Float copy of the tensor).
    public func firstNonFinite() -> [Int]? {
        guard let flat = firstNonFiniteOffset() else { return nil }
        return multiIndex(flat)
    }

    /// How many elements are ±Inf. An f16 attention output holds one wherever the result's magnitude
    /// exceeds 65504, f16's largest finite value (bf16's range is f32's): the conversion saturates,
    /// as every fp16 store does.
    public func infinityCount() -> Int {
        floats().reduce(0) { $0 + ($1.isInfinite ? 1 : 0) }
    }

    /// Throws `AttentionError.nonFinite` naming `name`, the element's index and its value when
    /// the tensor holds a NaN or an infinity (the kernels compute on finite inputs only).
    public func checkFinite(name: String) throws {
        guard let flat = firstNonFiniteOffset() else { return }
        let value = Tensor(shape: [1], dtype: dtype, bytes: Array(bytes[(flat * dtype.byteCount)..<((flat + 1) * dtype.byteCount)])).floats()[0]
        throw AttentionError.nonFinite(tensor: name, index: multiIndex(flat), value: value)
    }

    /// Flat index of the first element whose exponent bits are all ones (NaN or ±Inf).
    func firstNonFiniteOffset() -> Int? {
        let n = elementCount
        return bytes.withUnsafeBytes { raw -> Int? in
            switch dtype {
            case .f32:
                for i in 0..<n where UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) & 0x7f80_0000 == 0x7f80_0000 { return i }
            case .f16:
                for i in 0..<n where UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) & 0x7c00 == 0x7c00 { return i }
            case .bf16:
                for i in 0..<n where UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) & 0x7f80 == 0x7f80 { return i }
            }
            return nil
        }
    }

    /// The C-order multi-index of flat element `flat`.
    func multiIndex(_ flat: Int) -> [Int] {
        var index = [Int](repeating: 0, count: shape.count)
        var rest = flat
        for axis in shape.indices.reversed() {
            index[axis] = shape[axis] == 0 ? 0 : rest % shape[axis]
            rest /= max(shape[axis], 1)
        }
        return index
    }
}
