/// A tensor in host memory: a shape, an element type and its little-endian bytes in C order.
public struct Tensor: Sendable, Equatable {
    /// The dimensions, outermost first: attention reads `[H, N, d]` or `[B, H, N, d]`.
    public var shape: [Int]
    /// The element type of ``bytes``.
    public var dtype: DType
    /// Raw element bytes, `elementCount * dtype.byteCount` of them.
    public var bytes: [UInt8]

    /// The product of ``shape`` (1 for a scalar shape `[]`).
    public var elementCount: Int { shape.reduce(1, *) }

    /// A tensor of `bytes`, which must hold exactly the shape's elements in `dtype`. Throws
    /// `AttentionError.shape` when they do not, or when a dimension is negative or their product
    /// overflows.
    public init(shape: [Int], dtype: DType, bytes: [UInt8]) throws {
        let count = try Self.elementCount(of: shape)
        guard count.multipliedReportingOverflow(by: dtype.byteCount) == (bytes.count, false) else {
            throw AttentionError.shape("\(bytes.count) bytes do not hold shape \(shape) of \(dtype) (\(count) elements)")
        }
        self.init(unchecked: shape, dtype: dtype, bytes: bytes)
    }

    /// A tensor holding `values` rounded to `dtype`; throws `AttentionError.shape` when the values
    /// do not fill the shape.
    public init(shape: [Int], dtype: DType, values: [Float]) throws {
        let count = try Self.elementCount(of: shape)
        guard count == values.count else { throw AttentionError.shape("\(values.count) values do not fill shape \(shape)") }
        self.init(uncheckedShape: shape, dtype: dtype, values: values)
    }

    /// For sizes the library has checked itself.
    init(unchecked shape: [Int], dtype: DType, bytes: [UInt8]) {
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
    }

    init(uncheckedShape shape: [Int], dtype: DType, values: [Float]) {
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
        self.init(unchecked: shape, dtype: dtype, bytes: bytes)
    }

    /// The product of `shape`; throws for a negative dimension or an overflowing product.
    static func elementCount(of shape: [Int]) throws -> Int {
        var count = 1
        for dimension in shape {
            guard dimension >= 0 else { throw AttentionError.shape("negative dimension \(dimension) in shape \(shape)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw AttentionError.shape("shape \(shape) has more elements than an Int counts") }
            count = product
        }
        return count
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

    /// The same elements under another shape with the same element count; throws
    /// `AttentionError.shape` otherwise.
    public func reshaped(_ shape: [Int]) throws -> Tensor {
        guard try Self.elementCount(of: shape) == elementCount else {
            throw AttentionError.shape("cannot reshape \(self.shape) (\(elementCount) elements) to \(shape)")
        }
        return Tensor(unchecked: shape, dtype: dtype, bytes: bytes)
    }

    /// The same values stored as `dtype`.
    public func converted(to dtype: DType) -> Tensor {
        dtype == self.dtype ? self : Tensor(uncheckedShape: shape, dtype: dtype, values: floats())
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
        let value = Tensor(unchecked: [1], dtype: dtype, bytes: Array(bytes[(flat * dtype.byteCount)..<((flat + 1) * dtype.byteCount)])).floats()[0]
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
