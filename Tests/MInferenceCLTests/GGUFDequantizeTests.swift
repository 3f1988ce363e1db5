import Foundation
import MInferenceCLModel
import Testing

/// Dequantisation against blocks written by hand from ggml's layouts, and quantisation back to the
/// same bytes.
@Suite("GGUF: dequantisation")
struct GGUFDequantizeTests {
    /// Reads `bytes` as one tensor of `count` values of `type`.
    func dequantize(_ bytes: [UInt8], _ type: GGMLType, count: Int) throws -> [Float] {
        var writer = GGUFWriter()
        try writer.addTensor("t", dimensions: [count], type: type, bytes: bytes)
        return try writer.readBack().dequantize(named: "t")
    }

    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }

    @Test("Q4_0: f16 d, low nibbles are values 0..15, high nibbles 16..31, x = (q - 8) d")
    func q4_0() throws {
        // d = 0.5; byte j = j | (15 - j) << 4.
        let block = le16(0x3800) + (0..<16).map { UInt8($0) | UInt8(15 - $0) << 4 }
        let low: [Float] = (0..<16).map { Float($0 - 8) * 0.5 }
        let high: [Float] = (0..<16).map { Float(7 - $0) * 0.5 }
        let expected = low + high
        #expect(try dequantize(block, .q4_0, count: 32) == expected)
        #expect(try GGMLQuantize.quantize(expected, as: .q4_0) == block)
    }

    @Test("Q4_1: f16 d, f16 m, nibbles as Q4_0, x = q d + m")
    func q4_1() throws {
        // d = 0.25, m = -1; byte j = (15 - j) | j << 4.
        let block = le16(0x3400) + le16(0xBC00) + (0..<16).map { UInt8(15 - $0) | UInt8($0) << 4 }
        let low: [Float] = (0..<16).map { Float(15 - $0) * 0.25 - 1 }
        let high: [Float] = (0..<16).map { Float($0) * 0.25 - 1 }
        let expected = low + high
        #expect(try dequantize(block, .q4_1, count: 32) == expected)
        #expect(try GGMLQuantize.quantize(expected, as: .q4_1) == block)
    }

    @Test("Q8_0: f16 d, 32 int8, x = q d; two blocks")
    func q8_0() throws {
        let q0: [Int8] = (0..<32).map { Int8($0 * 8 - 127) }  // -127 ... 121
        let q1: [Int8] = (0..<32).map { Int8(truncatingIfNeeded: 127 - $0 * 3) }
        let block0 = le16(0x4000) + q0.map { UInt8(bitPattern: $0) }  // d = 2
        let block1 = le16(0xB400) + q1.map { UInt8(bitPattern: $0) }  // d = -0.25
        let expected = q0.map { Float($0) * 2 } + q1.map { Float($0) * -0.25 }
        #expect(try dequantize(block0 + block1, .q8_0, count: 64) == expected)
        // Quantising picks d > 0 (amax / 127), so the second block comes back with positive d.
        let requantized = try GGMLQuantize.quantize(expected, as: .q8_0)
        #expect(Array(requantized[0..<34]) == block0)
        #expect(try dequantize(requantized, .q8_0, count: 64) == expected)
    }

    @Test("F16 and BF16 widen exactly, including subnormals and infinities; F32 copies")
    func floats() throws {
        let halves: [UInt16] = [0x3C00, 0xC000, 0x7BFF, 0x0001, 0x7C00, 0x8000]
        let f16 = try dequantize(halves.flatMap(le16), .f16, count: 6)
        #expect(f16 == [1, -2, 65504, Float(Float16.leastNonzeroMagnitude), .infinity, -0.0])
        let brains: [UInt16] = [0x3F80, 0xC040, 0x7F80, 0x0001]
        let bf16 = try dequantize(brains.flatMap(le16), .bf16, count: 4)
        #expect(bf16 == [1, -3, .infinity, Float(bitPattern: 0x0001_0000)])
        let f32: [Float] = [0.1, -1e30, .leastNonzeroMagnitude]
        #expect(try dequantize(f32.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian, Array.init) }, .f32, count: 3) == f32)
    }

    @Test("Quantise then dequantise stays within half a step (Q4_0: one step)", arguments: [GGMLType.q8_0, .q4_0, .q4_1])
    func roundTrip(type: GGMLType) throws {
        var rng = SystemRandomNumberGenerator()
        let values = (0..<32 * 9).map { _ in Float.random(in: -3...3, using: &rng) }
        let back = try dequantize(try GGMLQuantize.quantize(values, as: type), type, count: values.count)
        for b in 0..<9 {
            let block = values[b * 32..<b * 32 + 32]
            let amax = block.map(abs).max()!
            // Q4_0 maps the largest magnitude to -8, so the other sign clips at +7: a whole step.
            let tolerance: Float = switch type {
            case .q8_0: amax / 127 * 0.5
            case .q4_0: amax / 8
            default: (block.max()! - block.min()!) / 15 * 0.5
            }
            // Plus the f16 rounding of d (and m) times the largest code.
            let bound = tolerance + amax * 2e-3 + 1e-6
            for i in block.indices { #expect(abs(values[i] - back[i]) <= bound, "\(type) value \(i)") }
        }
    }

    @Test("Quantising refuses partial blocks and non-finite values")
    func quantizeErrors() {
        #expect(throws: GGUFError.invalidTensor(tensor: "<values>", reason: "31 values are not whole Q4_1 blocks of 32")) {
            try GGMLQuantize.quantize([Float](repeating: 0, count: 31), as: .q4_1)
        }
        #expect(throws: GGUFError.invalidTensor(tensor: "<values>", reason: "Q8_0 cannot hold NaN or infinity")) {
            try GGMLQuantize.quantize([Float](repeating: .nan, count: 32), as: .q8_0)
        }
        #expect(throws: GGUFError.invalidTensor(tensor: "<values>", reason: "quantising to Q6_K is not supported")) {
            try GGMLQuantize.quantize([Float](repeating: 0, count: 256), as: .q6_K)
        }
    }

    @Test("Block sizes and type sizes match ggml's for the types a file may hold")
    func sizes() {
        let expected: [GGMLType: (Int, Int)] = [.f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q4_0: (32, 18),
                                                .q4_1: (32, 20), .q8_0: (32, 34), .q6_K: (256, 210), .q4_K: (256, 144)]
        for (type, (block, size)) in expected {
            #expect(type.blockSize == block && type.typeSize == size, "\(type)")
        }
        #expect(GGMLType.q4_K.description == "Q4_K" && GGMLType.iq2_XXS.description == "IQ2_XXS")
    }
}
