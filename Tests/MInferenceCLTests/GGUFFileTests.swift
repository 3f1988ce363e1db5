import Foundation
import MInferenceCLModel
import Testing

/// GGUF files written by `GGUFWriter` read back exactly: every value type, arrays (nested and
/// empty), tensor infos, alignment and the data offset.
@Suite("GGUF: reading and writing")
struct GGUFFileTests {
    static let everyValue: [(String, GGUFValue)] = [
        ("u8", .uint8(200)), ("i8", .int8(-100)), ("u16", .uint16(60000)), ("i16", .int16(-30000)),
        ("u32", .uint32(4_000_000_000)), ("i32", .int32(-2_000_000_000)), ("f32", .float32(-1.5e-7)),
        ("bool.true", .bool(true)), ("bool.false", .bool(false)), ("string", .string("héllo ✓ 🦙")),
        ("empty", .string("")), ("u64", .uint64(.max)), ("i64", .int64(.min)), ("f64", .float64(.pi)),
        ("array.i32", .array(.int32, [.int32(1), .int32(-2), .int32(3)])),
        ("array.strings", .array(.string, [.string("a"), .string(""), .string("Ġthe")])),
        ("array.empty", .array(.float32, [])),
        ("array.nested", .array(.array, [.array(.uint8, [.uint8(1)]), .array(.string, [.string("x")])])),
    ]

    @Test("Every value type and arrays read back exactly, in file order", arguments: [UInt32(2), 3])
    func metadataRoundTrip(version: UInt32) throws {
        var writer = GGUFWriter(version: version)
        for (k, v) in Self.everyValue { writer.add(k, v) }
        let file = try writer.readBack()
        #expect(file.version == version)
        #expect(file.metadataKeys == Self.everyValue.map(\.0))
        for (k, v) in Self.everyValue { #expect(file.metadata[k] == v, "\(k)") }
        #expect(file.tensors.isEmpty)
        #expect(file.alignment == 32)
    }

    @Test("Typed accessors convert, and name the key when absent or of another type")
    func typedAccessors() throws {
        var writer = GGUFWriter()
        for (k, v) in Self.everyValue { writer.add(k, v) }
        let file = try writer.readBack()
        #expect(try file.int("u32") == 4_000_000_000)
        #expect(try file.int("i8") == -100)
        #expect(try file.double("f32") == Double(Float(-1.5e-7)))
        #expect(try file.string("string") == "héllo ✓ 🦙")
        #expect(try file.bool("bool.true"))
        #expect(try file.strings("array.strings") == ["a", "", "Ġthe"])
        #expect(try file.ints("array.i32") == [1, -2, 3])
        #expect(try file.optional("absent", GGUFFile.int) == nil)
        #expect(try file.optional("u16", GGUFFile.int) == 60000)
        #expect(throws: GGUFError.missingKey(path: "<memory>", key: "absent")) { try file.int("absent") }
        #expect(throws: GGUFError.wrongType(path: "<memory>", key: "string", expected: "an integer", found: "string")) {
            try file.int("string")
        }
        #expect(throws: GGUFError.wrongType(path: "<memory>", key: "array.i32", expected: "an array of strings",
                                            found: "an array of int32")) { try file.strings("array.i32") }
        // A UInt64 above Int.max is not an Int.
        #expect(throws: GGUFError.self) { try file.int("u64") }
    }

    @Test("Tensor infos, offsets and data read back; alignment pads every tensor", arguments: [1, 32, 64])
    func tensorsRoundTrip(alignment: Int) throws {
        var writer = GGUFWriter(alignment: alignment)
        writer.add("general.architecture", .string("llama"))
        let a: [Float] = (0..<6).map { Float($0) - 2.5 }
        let b: [Float] = (0..<64).map { sin(Float($0)) }
        try writer.addTensor("a", dimensions: [3, 2], values: a, type: .f32)
        try writer.addTensor("b.q8", dimensions: [32, 2], values: b, type: .q8_0)
        try writer.addTensor("c.f16", dimensions: [7], values: [1, 2, 3, 4, 5, 6, 0.5], type: .f16)
        try writer.addTensor("d.bf16", dimensions: [1, 1, 1, 2], values: [1, -0.25], type: .bf16)
        let file = try writer.readBack()
        #expect(file.alignment == alignment)
        #expect(file.dataOffset % alignment == 0)
        #expect(file.tensors.map(\.name) == ["a", "b.q8", "c.f16", "d.bf16"])
        #expect(file.tensors.allSatisfy { $0.offset % alignment == 0 })
        if alignment == 32 { #expect(file.metadata["general.alignment"] == nil) } else {
            #expect(file.metadata["general.alignment"] == .uint32(UInt32(alignment)))
        }
        let ta = try file.tensor(named: "a")
        #expect(ta.dimensions == [3, 2] && ta.shape == [2, 3] && ta.type == .f32 && ta.byteCount == 24)
        #expect(ta.rowLength == 3 && ta.rowCount == 2)
        #expect(try file.dequantize(ta) == a)
        #expect(try file.dequantize(ta, rows: 1..<2) == Array(a[3...]))
        let tb = try file.tensor(named: "b.q8")
        #expect(tb.byteCount == 68 && tb.type == .q8_0)
        let bBack = try file.dequantize(tb)
        #expect(zip(b, bBack).allSatisfy { abs($0 - $1) <= 1.0 / 127 * 0.51 + 1e-3 })
        #expect(try file.dequantize(named: "c.f16") == [1, 2, 3, 4, 5, 6, 0.5])
        #expect(try file.dequantize(named: "d.bf16") == [1, -0.25])
        #expect(try file.tensor(named: "d.bf16").shape == [2, 1, 1, 1])
        // The stored bytes are what the writer was given.
        for (info, bytes) in writer.tensors {
            file.withBytes(of: try file.tensor(named: info.name)) { #expect(Array($0) == bytes, "\(info.name)") }
        }
    }

    @Test("A file on disk is memory-mapped and reads back like the bytes in memory")
    func fileOnDisk() throws {
        var writer = GGUFWriter()
        writer.add("k", .string("v"))
        try writer.addTensor("t", dimensions: [32], values: (0..<32).map(Float.init), type: .q4_1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("gguf-\(UUID().uuidString).gguf").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        #expect(file.path == path)
        #expect(file.fileSize == writer.encoded().count)
        #expect(try file.string("k") == "v")
        #expect(try file.dequantize(named: "t") == (try writer.readBack().dequantize(named: "t")))
    }
}
