/// Float to ggml blocks, following ggml's reference `quantize_row_*_ref` (ggml-quants.c), so a
/// test can build a model file in the same types a real one uses. Inverse of `GGMLDequantize`
/// up to rounding; see there for the block layouts.
public enum GGMLQuantize {
    /// The bytes of `values` stored as `type` (F32, F16, BF16, Q8_0, Q4_0 or Q4_1).
    /// - Throws: `GGUFError.invalidTensor` when `values.count` is not a multiple of the block size
    ///   or the type is not one of those, or a value is not finite in a quantised type.
    public static func quantize(_ values: [Float], as type: GGMLType, name: String = "<values>") throws -> [UInt8] {
        guard [.f32, .f16, .bf16].contains(type) || values.allSatisfy(\.isFinite) else {
            throw GGUFError.invalidTensor(tensor: name, reason: "\(type) cannot hold NaN or infinity")
        }
        guard values.count % type.blockSize == 0 else {
            throw GGUFError.invalidTensor(tensor: name, reason: "\(values.count) values are not whole \(type) blocks of \(type.blockSize)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(values.count / type.blockSize * type.typeSize)
        switch type {
        case .f32: for v in values { append(v.bitPattern, to: &out) }
        case .f16: for v in values { append(Float16(v).bitPattern, to: &out) }
        case .bf16: for v in values { append(bfloat16(v), to: &out) }
        case .q8_0:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = values[b..<b + 32]
                let amax = block.map(abs).max()!
                let d = amax / 127
                let id = d != 0 ? 1 / d : 0
                append(Float16(d).bitPattern, to: &out)
                for v in block { out.append(UInt8(bitPattern: Int8((v * id).rounded()))) }
            }
        case .q4_0:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = Array(values[b..<b + 32])
                // The value of largest magnitude, with its sign, maps to -8.
                let max = block.max { abs($0) < abs($1) }!
                let d = max / -8
                let id = d != 0 ? 1 / d : 0
                append(Float16(d).bitPattern, to: &out)
                let q = block.map { UInt8(min(15, Int8($0 * id + 8.5))) }
                for j in 0..<16 { out.append(q[j] | q[j + 16] << 4) }
            }
        case .q4_1:
            for b in stride(from: 0, to: values.count, by: 32) {
                let block = Array(values[b..<b + 32])
                let lo = block.min()!, hi = block.max()!
                let d = (hi - lo) / 15
                let id = d != 0 ? 1 / d : 0
                append(Float16(d).bitPattern, to: &out)
                append(Float16(lo).bitPattern, to: &out)
                let q = block.map { UInt8(min(15, Int8(($0 - lo) * id + 0.5))) }
                for j in 0..<16 { out.append(q[j] | q[j + 16] << 4) }
            }
        default:
            throw GGUFError.invalidTensor(tensor: name, reason: "quantising to \(type) is not supported")
        }
        return out
    }

    static func append<T: FixedWidthInteger>(_ value: T, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out += $0 }
    }

    /// Round to nearest even, as ggml's `GGML_FP32_TO_BF16`; NaN stays a quiet NaN.
    static func bfloat16(_ x: Float) -> UInt16 {
        var u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: u >> 16) | 0x0040 }
        u &+= 0x7fff &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: u >> 16)
    }
}
