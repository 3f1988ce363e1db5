import Foundation
import MInferenceCLModel
import Testing

/// The real SmolLM2-135M-Instruct Q4_1 GGUF (scripts/fetch-model.sh): its architecture keys,
/// every tensor's name, shape and type, and dequantised values against the `gguf` Python
/// package (Fixtures/gguf/smollm2-tensors.json, made by make_fixtures.py beside it).
@Suite("GGUF: the real SmolLM2-135M model", .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct GGUFModelTests {
    var file: GGUFFile { get throws { try RealModel.file.get() } }

    @Test("Llama architecture keys: 30 layers, width 576, 9 query and 3 KV heads, RoPE base 100000")
    func architecture() throws {
        let f = try file
        #expect(f.version == 3 && f.alignment == 32 && f.tensors.count == 272 && f.metadataKeys.count == 33)
        #expect(try f.string("general.architecture") == "llama")
        #expect(try f.int("llama.block_count") == 30)
        #expect(try f.int("llama.context_length") == 8192)
        #expect(try f.int("llama.embedding_length") == 576)
        #expect(try f.int("llama.feed_forward_length") == 1536)
        #expect(try f.int("llama.attention.head_count") == 9)
        #expect(try f.int("llama.attention.head_count_kv") == 3)
        #expect(try f.int("llama.rope.dimension_count") == 64)
        #expect(try f.int("llama.vocab_size") == 49152)
        #expect(try f.double("llama.rope.freq_base") == 100_000)
        #expect(try f.double("llama.attention.layer_norm_rms_epsilon") == Double(Float(1e-5)))
        #expect(try f.int("general.file_type") == 3)  // LLAMA_FTYPE_MOSTLY_Q4_1
        #expect(f.metadata["llama.rope.scaling.type"] == nil)
    }

    @Test("Every tensor's name, dimensions (ggml order) and type; the output matrix is the embedding")
    func tensors() throws {
        let f = try file
        var expected: [String: ([Int], GGMLType)] = [
            "token_embd.weight": ([576, 49152], .q8_0),
            "output_norm.weight": ([576], .f32),
        ]
        for i in 0..<30 {
            expected["blk.\(i).attn_norm.weight"] = ([576], .f32)
            expected["blk.\(i).ffn_norm.weight"] = ([576], .f32)
            expected["blk.\(i).attn_q.weight"] = ([576, 576], .q4_1)
            expected["blk.\(i).attn_k.weight"] = ([576, 192], .q4_1)
            expected["blk.\(i).attn_v.weight"] = ([576, 192], .q4_1)
            expected["blk.\(i).attn_output.weight"] = ([576, 576], .q4_1)
            expected["blk.\(i).ffn_gate.weight"] = ([576, 1536], .q4_1)
            expected["blk.\(i).ffn_up.weight"] = ([576, 1536], .q4_1)
            expected["blk.\(i).ffn_down.weight"] = ([1536, 576], .q4_1)
        }
        #expect(Set(f.tensors.map(\.name)) == Set(expected.keys))
        for t in f.tensors {
            #expect(t.dimensions == expected[t.name]?.0 && t.type == expected[t.name]?.1, "\(t.name): \(t.dimensions) \(t.type)")
        }
        #expect(!f.hasTensor(named: "output.weight"))
        #expect(try f.tensor(named: "token_embd.weight").shape == [49152, 576])
        let last = f.tensors.max { $0.offset < $1.offset }!
        #expect(f.dataOffset + last.offset + last.byteCount == f.fileSize)
    }

    struct TensorCheck: Decodable {
        var name: String, type: String, dimensions: [Int]
        var first: [Double], secondRow: [Double], last: [Double]
        var sum: Double, sumOfSquares: Double
    }

    @Test("Dequantised values agree with the gguf Python package")
    func values() throws {
        struct Fixture: Decodable { var tensors: [TensorCheck] }
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("gguf/smollm2-tensors.json")))
        let f = try file
        for check in try JSONDecoder().decode(Fixture.self, from: data).tensors {
            let t = try f.tensor(named: check.name)
            #expect(t.type.description == check.type && t.dimensions == check.dimensions, "\(check.name)")
            let v = try f.dequantize(t)
            #expect(v.prefix(8).map(Double.init) == check.first, "\(check.name)")
            #expect(v.dropFirst(t.rowLength).prefix(4).map(Double.init) == check.secondRow, "\(check.name)")
            #expect(v.suffix(4).map(Double.init) == check.last, "\(check.name)")
            let sum = v.reduce(0.0) { $0 + Double($1) }, squares = v.reduce(0.0) { $0 + Double($1) * Double($1) }
            #expect(abs(sum - check.sum) <= 1e-9 * squares, "\(check.name): sum \(sum) vs \(check.sum)")
            #expect(abs(squares - check.sumOfSquares) <= 1e-9 * check.sumOfSquares, "\(check.name)")
            // One row alone is the same as that row of the whole tensor.
            if t.rowCount > 1 { #expect(try f.dequantize(t, rows: 1..<2) == Array(v[t.rowLength..<2 * t.rowLength])) }
        }
    }
}
