/// Turns ggml blocks into Float, following ggml's reference `dequantize_row_*` (ggml-quants.c).
///
/// Block layouts (little-endian, 32 values a block):
/// - Q4_0: f16 `d`, 16 bytes; byte `j` holds value `j` in its low nibble and value `j + 16` in
///   its high nibble; `x = (q - 8) * d`.
/// - Q4_1: f16 `d`, f16 `m`, 16 bytes as Q4_0; `x = q * d + m`.
/// - Q8_0: f16 `d`, 32 int8; `x = q * d`.
/// F16 and BF16 are widened exactly; F32 is copied.
public enum GGMLDequantize {
    /// Dequantises `output.count` values (whole blocks of `type`) from `input`.
    /// - Precondition: `input` holds at least `output.count / type.blockSize * type.typeSize`
    ///   bytes and `output.count` is a multiple of `type.blockSize`.
    /// - Returns: false for a type this cannot dequantise (see `GGMLType.isDequantizable`).
    public static func dequantize(_ input: UnsafeRawBufferPointer, type: GGMLType,
                                  into output: UnsafeMutableBufferPointer<Float>) -> Bool {
        let n = output.count
        precondition(n % type.blockSize == 0 && input.count >= n / type.blockSize * type.typeSize)
        guard n > 0 else { return type.isDequantizable }
        let out = output.baseAddress!
        switch type {
        case .f32:
            for i in 0..<n { out[i] = input.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
        case .f16:
            for i in 0..<n { out[i] = half(input, 2 * i) }
        case .bf16:
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(input.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
        case .q8_0:
            for b in 0..<n / 32 {
                let base = b * 34
                let d = half(input, base)
                for j in 0..<32 { out[b * 32 + j] = Float(Int8(bitPattern: input[base + 2 + j])) * d }
            }
        case .q4_0:
            for b in 0..<n / 32 {
                let base = b * 18
                let d = half(input, base)
                for j in 0..<16 {
                    let q = input[base + 2 + j]
                    out[b * 32 + j] = Float(Int(q & 0x0F) - 8) * d
                    out[b * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q4_1:
            for b in 0..<n / 32 {
                let base = b * 20
                let d = half(input, base)
                let m = half(input, base + 2)
                for j in 0..<16 {
                    let q = input[base + 4 + j]
                    out[b * 32 + j] = Float(q & 0x0F) * d + m
                    out[b * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
        default:
            return false
        }
        return true
    }

    /// The f16 at byte `offset`, widened.
    @inline(__always)
    static func half(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> Float {
        Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
    }
}

extension GGUFFile {
    /// All values of `tensor` as Float, in storage order (row `r` is `values[r * rowLength ..<
    /// (r + 1) * rowLength]`).
    /// - Throws: `GGUFError.unsupportedDequantization` for a type other than F32, F16, BF16,
    ///   Q8_0, Q4_0, Q4_1.
    public func dequantize(_ tensor: GGUFTensorInfo) throws -> [Float] {
        try dequantize(tensor, rows: 0..<tensor.rowCount)
    }

    /// Rows `rows` of `tensor` as Float (an embedding lookup reads one row of a large table).
    /// - Throws: `GGUFError.unsupportedDequantization`; `GGUFError.malformed` for rows outside
    ///   `0..<tensor.rowCount`; `GGUFError.missingTensor` for a tensor that is not this file's.
    public func dequantize(_ tensor: GGUFTensorInfo, rows: Range<Int>) throws -> [Float] {
        guard isOwn(tensor) else { throw GGUFError.missingTensor(path: path, tensor: tensor.name) }
        guard tensor.type.isDequantizable else {
            throw GGUFError.unsupportedDequantization(path: path, tensor: tensor.name, type: tensor.type)
        }
        guard rows.lowerBound >= 0, rows.upperBound <= tensor.rowCount else {
            throw GGUFError.malformed(path: path, reason: "rows \(rows) of tensor '\(tensor.name)', which has \(tensor.rowCount)")
        }
        return withBytes(of: tensor) { bytes in
            let size = tensor.rowByteCount
            let slice = UnsafeRawBufferPointer(rebasing: bytes[rows.lowerBound * size..<rows.upperBound * size])
            return [Float](unsafeUninitializedCapacity: rows.count * tensor.rowLength) { buffer, count in
                _ = GGMLDequantize.dequantize(slice, type: tensor.type, into: buffer)
                count = buffer.count
            }
        }
    }

    /// `dequantize(tensor(named: name))`.
    public func dequantize(named name: String) throws -> [Float] {
        try dequantize(try tensor(named: name))
    }
}
