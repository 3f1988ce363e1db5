import COpenCL

/// A tensor in device memory: a view of a buffer with the logical shape `[B, H, N, d]` (or
/// `[H, N, d]`), an element type, strides and an offset, both in elements.
///
/// The library's own tensors are contiguous (`strides` = C order, `offset` 0). A caller's buffer is
/// wrapped with `init(wrapping:dtype:shape:strides:offset:)`, in any layout whose head-dim channels
/// are contiguous: FlashAttention's `[B, N, H, d]` (strides `[N*H*d, d, H*d, 1]`), a slice of
/// heads or tokens of a larger buffer, a KV cache with room for more tokens. Every kernel family
/// reads and writes through the layout, without copies.
public struct DeviceTensor: Sendable {
    /// The buffer the view reads and writes: the library's own, or a wrapped `cl_mem` (retained
    /// while the tensor lives).
    public let buffer: DeviceBuffer
    /// The logical shape: `[B, H, N, d]` or `[H, N, d]`.
    public let shape: [Int]
    /// The element type (2 bytes for f16 and bf16, 4 for f32).
    public let dtype: DType
    /// Elements between neighbours along each dimension of `shape`; the last is 1.
    public let strides: [Int]
    /// Elements from the start of the buffer to element `[0, 0, 0, 0]`.
    public let offset: Int

    /// The number of elements of the logical shape.
    public var elementCount: Int { shape.reduce(1, *) }
    /// The OpenCL buffer holding the elements.
    public var clMem: cl_mem { buffer.clMem }
    /// Whether the elements fill `[offset, offset + elementCount)` in C order.
    public var isContiguous: Bool { strides == Self.contiguousStrides(shape) }

    /// Allocates an uninitialised contiguous tensor. A shape with a negative entry, or too large
    /// to address, is refused with `AttentionError.shape`; memory limits with `DeviceMemoryError`.
    public init(context: ComputeContext, shape: [Int], dtype: DType, label: String = "tensor") throws {
        self.shape = shape
        self.dtype = dtype
        self.strides = Self.contiguousStrides(shape)
        self.offset = 0
        let bytes = shape.reduce(dtype.byteCount) { total, n in total.multipliedReportingOverflow(by: n).overflow ? -1 : total * n }
        guard shape.allSatisfy({ $0 >= 0 }), bytes >= 0 else {
            throw AttentionError.shape("\(label) of shape \(shape) cannot be allocated: negative or too large to address")
        }
        self.buffer = try DeviceBuffer(context: context, byteCount: bytes, label: label)
    }

    /// Uploads `tensor` (waits for the copy).
    public init(context: ComputeContext, copying tensor: Tensor, label: String = "tensor") throws {
        try self.init(context: context, shape: tensor.shape, dtype: tensor.dtype, label: label)
        try tensor.bytes.withUnsafeBytes { try buffer.write($0) }
    }

    /// A view of a caller's buffer; retains `buffer` while the view (or a copy of it) lives and
    /// never releases the caller's reference.
    ///
    /// - Parameters:
    ///   - buffer: an OpenCL buffer of the context the tensor will be used in.
    ///   - dtype: the element type.
    ///   - shape: the logical shape, always `[B, H, N, d]` or `[H, N, d]` whatever the memory
    ///     order.
    ///   - strides: elements between neighbours along each dimension of `shape` (nil: C order).
    ///     The last must be 1 (the channels of a row are contiguous); the others positive, or any
    ///     value for a dimension of size 1. `[N*H*d, d, H*d, 1]` is FlashAttention's `[B, N, H, d]`.
    ///   - offset: elements from the start of the buffer to the first element.
    /// - Throws: `AttentionError.shape` for a shape of the wrong rank or with a negative entry,
    ///   strides of the wrong count, a channel stride other than 1, or a negative stride or
    ///   offset; `AttentionError.invalidArgument` when the view reaches past the end of the buffer
    ///   (out-of-bounds views are refused) or `buffer` is not a buffer; `OpenCLError` when the
    ///   buffer cannot be queried. Alignment and overlap are checked where the tensor is used
    ///   (`AttentionEngine.enqueue`).
    public init(wrapping buffer: cl_mem, dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0) throws {
        try self.init(buffer: DeviceBuffer(wrapping: buffer), dtype: dtype, shape: shape, strides: strides, offset: offset)
    }

    /// A view of `buffer` (the library's or a wrapped one); checks as in `init(wrapping:...)`.
    public init(buffer: DeviceBuffer, dtype: DType, shape: [Int], strides: [Int]? = nil, offset: Int = 0) throws {
        guard shape.count == 3 || shape.count == 4 else {
            throw AttentionError.shape("a device tensor has shape [B, H, N, d] or [H, N, d]; got \(shape)")
        }
        guard shape.allSatisfy({ $0 >= 0 }) else { throw AttentionError.shape("shape \(shape) has a negative dimension") }
        let strides = strides ?? Self.contiguousStrides(shape)
        guard strides.count == shape.count else {
            throw AttentionError.shape("\(strides.count) strides \(strides) for the \(shape.count) dimensions of shape \(shape)")
        }
        guard strides.last == 1 || shape.last == 1 else {
            throw AttentionError.shape("the head-dim stride is \(strides.last!); the channels of a row must be contiguous (stride 1)")
        }
        for (i, stride) in strides.enumerated() where stride < 0 && shape[i] > 1 {
            throw AttentionError.shape("stride \(stride) of dimension \(i) is negative; negative strides are not supported")
        }
        guard offset >= 0 else { throw AttentionError.shape("offset \(offset) is negative") }
        self.buffer = buffer
        self.shape = shape
        self.dtype = dtype
        self.strides = strides
        self.offset = offset
        let bytes = span.upperBound.multipliedReportingOverflow(by: dtype.byteCount)
        guard !bytes.overflow, bytes.partialValue <= buffer.byteCount else {
            throw AttentionError.invalidArgument(
                "the view (shape \(shape), strides \(strides), offset \(offset), \(dtype)) reaches element \(span.upperBound), past the end of a buffer of \(buffer.byteCount) bytes (\(buffer.byteCount / dtype.byteCount) elements)")
        }
    }

    /// C-order strides of `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for i in stride(from: shape.count - 2, through: 0, by: -1) {
            strides[i] = strides[i + 1] * max(shape[i + 1], 1)
        }
        return strides
    }

    /// FlashAttention's `[B, N, H, d]` memory order for the logical shape `[B, H, N, d]` (or
    /// `[N, H, d]` for `[H, N, d]`), in the strides of the logical shape.
    public static func tokenMajorStrides(_ shape: [Int]) -> [Int] {
        let h = shape[shape.count - 3], n = shape[shape.count - 2], d = shape[shape.count - 1]
        let inner = [d, h * d, 1]
        return shape.count == 4 ? [n * h * d] + inner : inner
    }

    /// The elements the view touches, from the first to one past the last (empty for an empty shape).
    var span: Range<Int> {
        guard !shape.contains(0) else { return offset..<offset }
        let extent = zip(shape, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        return offset..<(offset + extent + 1)
    }

    /// The layout the kernels read (attention_common.h: layout_t).
    var layout: TensorLayout {
        // A dimension of size 1 is never stepped along: its stride is whatever the caller gave.
        let shape4 = shape.count == 3 ? [1] + shape : shape
        let s4 = zip(shape4, shape.count == 3 ? [0] + strides : strides).map { $0.0 > 1 ? $0.1 : 0 }
        return TensorLayout(offset: offset, batchStride: s4[0], headStride: s4[1], tokenStride: s4[2])
    }

    /// Whether no two elements share memory (an output must not overlap itself).
    var isNonOverlapping: Bool {
        let dims = zip(shape, strides).filter { $0.0 > 1 }.sorted { $0.1 < $1.1 }
        var extent = 1
        for (size, stride) in dims {
            guard stride >= extent else { return false }
            extent = stride * (size - 1) + extent
        }
        return true
    }

    /// Copies the tensor back to the host as a contiguous `Tensor` (waits). A wrapped tensor is
    /// read through `context` (a context of its buffer's OpenCL context). Throws
    /// `AttentionError.invalidArgument` when there is no queue to read with, `OpenCLError` when
    /// the read fails.
    public func download(using context: ComputeContext? = nil) throws -> Tensor {
        let element = dtype.byteCount
        if isContiguous {
            var bytes = [UInt8](repeating: 0, count: elementCount * element)
            try bytes.withUnsafeMutableBytes { try buffer.read(into: $0, offset: offset * element, using: context) }
            return Tensor(unchecked: shape, dtype: dtype, bytes: bytes)
        }
        let covering = try readSpan(using: context)
        var bytes = [UInt8](repeating: 0, count: elementCount * element)
        var index = 0
        forEachRow { start in
            let from = (start - span.lowerBound) * element, count = shape.last! * element
            bytes.replaceSubrange((index)..<(index + count), with: covering[from..<(from + count)])
            index += count
        }
        return Tensor(unchecked: shape, dtype: dtype, bytes: bytes)
    }

    /// Fills every element of the view with NaN (tests poison outputs before a run); elements of the
    /// buffer outside the view are left as they are.
    public func poison(using context: ComputeContext? = nil) throws {
        let pattern: UInt32 = switch dtype {
        case .f32: 0x7fc0_0000
        case .f16: 0x7e00_7e00
        case .bf16: 0x7fc0_7fc0
        }
        if offset == 0 && isContiguous && buffer.owner != nil {
            return try buffer.fill(pattern: pattern, using: context)
        }
        var covering = try readSpan(using: context)
        let element = dtype.byteCount
        withUnsafeBytes(of: pattern.littleEndian) { word in
            forEachRow { start in
                let from = (start - span.lowerBound) * element
                for b in 0..<(shape.last! * element) { covering[from + b] = word[b % 4] }
            }
        }
        try covering.withUnsafeBytes { try buffer.write($0, offset: span.lowerBound * element, using: context) }
    }

    private func readSpan(using context: ComputeContext?) throws -> [UInt8] {
        var covering = [UInt8](repeating: 0, count: span.count * dtype.byteCount)
        try covering.withUnsafeMutableBytes { try buffer.read(into: $0, offset: span.lowerBound * dtype.byteCount, using: context) }
        return covering
    }

    /// Calls `body` with the element index of each row's first channel, in C order of the shape.
    private func forEachRow(_ body: (Int) -> Void) {
        guard !shape.contains(0) else { return }
        let outer = Array(shape.dropLast()), outerStrides = Array(strides.dropLast())
        var index = [Int](repeating: 0, count: outer.count)
        while true {
            body(offset + zip(index, outerStrides).reduce(0) { $0 + $1.0 * $1.1 })
            var dim = outer.count - 1
            while dim >= 0 {
                index[dim] += 1
                if index[dim] < outer[dim] { break }
                index[dim] = 0
                dim -= 1
            }
            if dim < 0 { return }
        }
    }
}

/// Where a tensor's rows are, as the kernels take it (attention_common.h: layout_t): element
/// offset and the batch, head and token strides in elements (channels contiguous).
package struct TensorLayout: Sendable, Hashable {
    var offset: Int
    var batchStride: Int
    var headStride: Int
    var tokenStride: Int

    /// Contiguous `[B, heads, n, d]`.
    static func contiguous(heads: Int, length n: Int, headDim d: Int) -> TensorLayout {
        TensorLayout(offset: 0, batchStride: heads * n * d, headStride: n * d, tokenStride: d)
    }

    /// Whether every row starts 16 bytes aligned for 16-bit elements (the tensor-core paths' copies).
    var isAligned: Bool { [offset, batchStride, headStride, tokenStride].allSatisfy { $0 % 8 == 0 } }
}
