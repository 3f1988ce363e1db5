/// Element type of a tensor in memory.
public enum DType: String, Sendable, Hashable, CaseIterable, Codable, CustomStringConvertible {
    /// IEEE 754 half precision (binary16): 2 bytes, 10 mantissa bits, largest finite value 65504.
    case f16
    /// bfloat16: 2 bytes, the upper half of an `f32` (8 exponent bits, 7 mantissa bits).
    case bf16
    /// IEEE 754 single precision (binary32): 4 bytes.
    case f32

    /// Accepts `f16`/`fp16`/`float16`/`half`, `bf16`/`bfloat16`, `f32`/`fp32`/`float32`/`float`.
    public init?(name: String) {
        switch name.lowercased() {
        case "f16", "fp16", "float16", "half": self = .f16
        case "bf16", "bfloat16": self = .bf16
        case "f32", "fp32", "float32", "float": self = .f32
        default: return nil
        }
    }

    /// Bytes per element: 2 for `f16` and `bf16`, 4 for `f32`.
    public var byteCount: Int { self == .f32 ? 4 : 2 }
    /// The raw value: `f16`, `bf16` or `f32`.
    public var description: String { rawValue }

    /// The `-D` value the kernels use for this type (see CLKernels/attention_common.h).
    var kernelName: String {
        switch self {
        case .f32: "DTYPE_F32"
        case .f16: "DTYPE_F16"
        case .bf16: "DTYPE_BF16"
        }
    }

    /// Rounds a value to this type and back (what storing it would keep).
    public func rounded(_ x: Float) -> Float {
        switch self {
        case .f32: x
        case .f16: Float(Float16(x))
        case .bf16: BFloat16Bits.toFloat(BFloat16Bits.fromFloat(x))
        }
    }
}

/// bfloat16 as raw 16-bit words: the high half of an IEEE float, rounded to nearest even.
enum BFloat16Bits {
    static func fromFloat(_ x: Float) -> UInt16 {
        var u = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: u >> 16) | 0x0040 }
        u &+= 0x7fff &+ ((u >> 16) & 1)
        return UInt16(truncatingIfNeeded: u >> 16)
    }

    static func toFloat(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}
