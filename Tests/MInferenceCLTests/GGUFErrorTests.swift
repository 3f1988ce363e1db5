import Foundation
import MInferenceCLModel
import Testing

/// Every way a GGUF file can be wrong is refused with a `GGUFError` that says what and where;
/// none crashes, whatever the bytes.
@Suite("GGUF: bad files")
struct GGUFErrorTests {
    /// A small valid file: a few keys of different types and two tensors.
    static func sample() throws -> GGUFWriter {
        var writer = GGUFWriter()
        writer.add("general.architecture", .string("llama"))
        writer.add("some.count", .uint32(7))
        writer.add("some.list", .array(.string, [.string("a"), .string("bc")]))
        try writer.addTensor("first.weight", dimensions: [32, 2], values: (0..<64).map(Float.init), type: .q4_1)
        try writer.addTensor("second.weight", dimensions: [5], values: [1, 2, 3, 4, 5], type: .f32)
        return writer
    }

    func read(_ bytes: [UInt8]) throws -> GGUFFile { try GGUFFile(data: Data(bytes)) }

    @Test("Every cut of a file is refused as truncated (directory) or tensor beyond end (data)")
    func everyTruncation() throws {
        let bytes = try Self.sample().encoded()
        let full = try read(bytes)
        for length in 0..<bytes.count {
            do {
                _ = try read(Array(bytes[..<length]))
                Issue.record("a file cut to \(length) of \(bytes.count) bytes was accepted")
            } catch let error as GGUFError {
                switch error {
                case .truncated(_, _, let offset, let needed, let size):
                    #expect(length < full.dataOffset && size == length && offset + needed > length, "\(error)")
                case .tensorBeyondEnd:
                    #expect(length >= full.dataOffset - 31, "\(error)")
                default: Issue.record("cut to \(length): \(error)")
                }
            }
        }
        #expect(throws: GGUFError.truncated(path: "<memory>", what: "the magic \"GGUF\"", offset: 0, needed: 4, fileSize: 2)) {
            try read(Array(bytes[..<2]))
        }
    }

    @Test("Bad magic and unsupported versions")
    func magicAndVersion() throws {
        var bytes = try Self.sample().encoded()
        bytes[3] = UInt8(ascii: "X")
        #expect(throws: GGUFError.badMagic(path: "<memory>", found: Array("GGUX".utf8))) { try read(bytes) }
        for version: UInt32 in [0, 1, 4, 0x0300_0000] {
            bytes = try Self.sample().encoded()
            patch(&bytes, at: 4, version)
            #expect(throws: GGUFError.unsupportedVersion(path: "<memory>", version: version)) { try read(bytes) }
        }
        #expect("\(GGUFError.unsupportedVersion(path: "m", version: 0x0300_0000))".contains("big-endian"))
    }

    @Test("Unknown value types, of a key and of array elements")
    func unknownValueTypes() throws {
        var bytes = try Self.sample().encoded()
        let count = firstOffset(of: Array("some.count".utf8), in: bytes)! + "some.count".utf8.count
        patch(&bytes, at: count, UInt32(13))
        #expect(throws: GGUFError.unknownValueType(path: "<memory>", key: "some.count", rawType: 13)) { try read(bytes) }
        bytes = try Self.sample().encoded()
        let list = firstOffset(of: Array("some.list".utf8), in: bytes)! + "some.list".utf8.count
        patch(&bytes, at: list + 4, UInt32(0xFFFF_FFFF))
        #expect(throws: GGUFError.unknownValueType(path: "<memory>", key: "some.list", rawType: 0xFFFF_FFFF)) { try read(bytes) }
    }

    /// Offset of the u32 dimension count in the tensor info of `name`.
    func tensorInfo(_ name: String, in bytes: [UInt8]) -> Int {
        firstOffset(of: Array(name.utf8), in: bytes)! + name.utf8.count
    }

    @Test("Unknown and removed tensor types")
    func unknownTensorTypes() throws {
        for raw: UInt32 in [4, 31, 99] {
            var bytes = try Self.sample().encoded()
            // second.weight: u32 dimension count, one u64 dimension, then its type.
            patch(&bytes, at: tensorInfo("second.weight", in: bytes) + 4 + 8, raw)
            #expect(throws: GGUFError.unknownTensorType(path: "<memory>", tensor: "second.weight", rawType: raw)) { try read(bytes) }
        }
    }

    @Test("Tensor shapes: dimension counts, element overflow, partial blocks")
    func tensorShapes() throws {
        var bytes = try Self.sample().encoded()
        patch(&bytes, at: tensorInfo("second.weight", in: bytes), UInt32(5))
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "tensor 'second.weight' has 5 dimensions (1 to 4 allowed)")) {
            try read(bytes)
        }
        bytes = try Self.sample().encoded()
        patch(&bytes, at: tensorInfo("second.weight", in: bytes), UInt32(0))
        #expect(throws: GGUFError.self) { try read(bytes) }
        bytes = try Self.sample().encoded()
        patch(&bytes, at: tensorInfo("first.weight", in: bytes) + 4 + 8, UInt64(1) << 62)
        let tooMany = "tensor 'first.weight' has too many elements (dimension 1 is 4611686018427387904)"
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: tooMany)) {
            try read(bytes)
        }
        bytes = try Self.sample().encoded()
        patch(&bytes, at: tensorInfo("first.weight", in: bytes) + 4, UInt64(33))
        let partial = "tensor 'first.weight': row length 33 is not a multiple of the Q4_1 block size 32"
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: partial)) {
            try read(bytes)
        }
    }

    @Test("Tensors beyond the end of the file, and misaligned tensors")
    func tensorPlacement() throws {
        let writer = try Self.sample()
        var bytes = writer.encoded()
        let file = try read(bytes)
        bytes.removeLast()
        #expect(throws: GGUFError.tensorBeyondEnd(path: "<memory>", tensor: "second.weight", end: file.fileSize, fileSize: file.fileSize - 1)) {
            try read(bytes)
        }
        bytes = writer.encoded()
        let offset = tensorInfo("second.weight", in: bytes) + 4 + 8 + 4
        patch(&bytes, at: offset, UInt64(64 * 1024))
        let end = file.dataOffset + 64 * 1024 + 20
        #expect(throws: GGUFError.tensorBeyondEnd(path: "<memory>", tensor: "second.weight", end: end, fileSize: file.fileSize)) {
            try read(bytes)
        }
        patch(&bytes, at: offset, UInt64.max)
        #expect(throws: GGUFError.tensorBeyondEnd(path: "<memory>", tensor: "second.weight", end: Int.max, fileSize: file.fileSize)) {
            try read(bytes)
        }
        patch(&bytes, at: offset, UInt64(48))
        #expect(throws: GGUFError.misalignedTensor(path: "<memory>", tensor: "second.weight", offset: 48, alignment: 32)) {
            try read(bytes)
        }
    }

    @Test("Duplicate keys and tensors")
    func duplicates() throws {
        var writer = try Self.sample()
        writer.add("some.count", .uint32(8))
        #expect(throws: GGUFError.duplicateKey(path: "<memory>", key: "some.count")) { try writer.readBack() }
        writer = try Self.sample()
        try writer.addTensor("first.weight", dimensions: [1], values: [0], type: .f32)
        #expect(throws: GGUFError.duplicateTensor(path: "<memory>", tensor: "first.weight")) { try writer.readBack() }
    }

    @Test("general.alignment must be a power of two stored as uint32")
    func alignmentKey() throws {
        var writer = GGUFWriter()
        writer.add("general.alignment", .uint32(24))
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "general.alignment 24 is not a power of two")) { try writer.readBack() }
        writer = GGUFWriter()
        writer.add("general.alignment", .uint32(0))
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "general.alignment 0 is not a power of two")) { try writer.readBack() }
        writer = GGUFWriter()
        writer.add("general.alignment", .uint64(64))
        #expect(throws: GGUFError.wrongType(path: "<memory>", key: "general.alignment", expected: "uint32", found: "uint64")) {
            try writer.readBack()
        }
    }

    @Test("Counts and lengths the file cannot hold are refused before allocating")
    func hugeCounts() throws {
        var bytes = try Self.sample().encoded()
        patch(&bytes, at: 8, UInt64.max)  // tensor count
        #expect(throws: GGUFError.self) { try read(bytes) }
        bytes = try Self.sample().encoded()
        patch(&bytes, at: 16, UInt64(1) << 40)  // key count
        #expect(throws: GGUFError.self) { try read(bytes) }
        bytes = try Self.sample().encoded()
        patch(&bytes, at: 24, UInt64.max - 3)  // length of the first key
        #expect(throws: GGUFError.self) { try read(bytes) }
        bytes = try Self.sample().encoded()
        let list = firstOffset(of: Array("some.list".utf8), in: bytes)! + "some.list".utf8.count
        patch(&bytes, at: list + 8, UInt64(1) << 60)  // element count of some.list
        #expect(throws: GGUFError.truncated(path: "<memory>", what: "the elements of 'some.list' (count 1152921504606846976)",
                                            offset: list + 8, needed: Int.max, fileSize: bytes.count)) { try read(bytes) }
    }

    @Test("Bools other than 0 and 1, and arrays nested too deep")
    func malformedValues() throws {
        var writer = GGUFWriter()
        writer.add("flag", .bool(true))
        var bytes = writer.encoded()
        bytes[firstOffset(of: Array("flag".utf8), in: bytes)! + 4 + 4] = 2  // after the name and the u32 type
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "key 'flag': bool byte 2 is neither 0 nor 1")) { try read(bytes) }
        var nested = GGUFValue.array(.int8, [.int8(1)])
        for _ in 0..<9 { nested = .array(.array, [nested]) }
        writer = GGUFWriter()
        writer.add("deep", nested)
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "key 'deep': arrays nested deeper than 8")) { try writer.readBack() }
    }

    @Test("Missing keys, tensors and files; unreadable paths; types that cannot be dequantised")
    func lookups() throws {
        var writer = try Self.sample()
        try writer.addTensor("k.weight", dimensions: [256], type: .q6_K, bytes: [UInt8](repeating: 0, count: 210))
        let file = try writer.readBack()
        #expect(throws: GGUFError.missingKey(path: "<memory>", key: "llama.block_count")) { try file.int("llama.block_count") }
        #expect(throws: GGUFError.missingTensor(path: "<memory>", tensor: "output.weight")) { try file.tensor(named: "output.weight") }
        #expect(throws: GGUFError.unsupportedDequantization(path: "<memory>", tensor: "k.weight", type: .q6_K)) {
            try file.dequantize(named: "k.weight")
        }
        #expect(throws: GGUFError.malformed(path: "<memory>", reason: "rows 1..<3 of tensor 'first.weight', which has 2")) {
            try file.dequantize(file.tensor(named: "first.weight"), rows: 1..<3)
        }
        let foreign = GGUFTensorInfo(name: "first.weight", dimensions: [32, 4], type: .q4_1, offset: 0)
        #expect(throws: GGUFError.missingTensor(path: "<memory>", tensor: "first.weight")) { try file.dequantize(foreign) }
        #expect(throws: GGUFError.missing(path: "/nonexistent/model.gguf")) { try GGUFFile(path: "/nonexistent/model.gguf") }
        #expect(throws: GGUFError.self) { try GGUFFile(path: FileManager.default.temporaryDirectory.path) }
        #expect(throws: GGUFError.invalidTensor(tensor: "t", reason: "Q8_0 [64] takes 68 bytes, got 67")) {
            var w = GGUFWriter()
            try w.addTensor("t", dimensions: [64], type: .q8_0, bytes: [UInt8](repeating: 0, count: 67))
        }
    }

    @Test("Errors are LocalizedErrors whose description names the file")
    func messages() {
        let error: any Error = GGUFError.tensorBeyondEnd(path: "m.gguf", tensor: "t", end: 10, fileSize: 8)
        #expect(error.localizedDescription == "m.gguf: tensor 't' ends at byte 10, past the end of the file (8 bytes)")
    }

    @Test("Random corruption never crashes: each damaged file is read or refused with a GGUFError")
    func randomCorruption() throws {
        let original = try Self.sample().encoded()
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            if Bool.random(using: &rng) { bytes.removeLast(Int.random(in: 0..<bytes.count, using: &rng)) }
            do {
                let file = try read(bytes)
                for t in file.tensors where t.type.isDequantizable { _ = try file.dequantize(t) }
            } catch is GGUFError {}
        }
    }
}

/// splitmix64: a fixed-seed generator for reproducible corruption.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
