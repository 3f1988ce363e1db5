import Foundation
import MInferenceCLModel
import Testing

/// A tiny random Llama model in the real GGUF layout: 2 layers, width 64, 4 query and 2 KV heads
/// of 16, FFN 96, vocabulary 100; F32 norms and V, Q8_0 embedding and output projection, Q4_1
/// for the rest. `untiedOutput` adds an F32 `output.weight`.
func tinyLlama(seed: UInt64, untiedOutput: Bool = false, architecture: String = "llama",
               dropKey: String? = nil) throws -> GGUFFile {
    var rng = SeededGenerator(seed: seed)
    func random(_ count: Int, scale: Float, offset: Float = 0) -> [Float] {
        (0..<count).map { _ in offset + scale * Float.random(in: -1...1, using: &rng) }
    }
    var w = GGUFWriter()
    let keys: [(String, GGUFValue)] = [
        ("general.architecture", .string(architecture)),
        ("llama.block_count", .uint32(2)),
        ("llama.context_length", .uint32(128)),
        ("llama.embedding_length", .uint32(64)),
        ("llama.feed_forward_length", .uint32(96)),
        ("llama.attention.head_count", .uint32(4)),
        ("llama.attention.head_count_kv", .uint32(2)),
        ("llama.rope.freq_base", .float32(10_000)),
        ("llama.rope.dimension_count", .uint32(16)),
        ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)),
        ("llama.vocab_size", .uint32(100)),
    ]
    for (key, value) in keys where key != dropKey { w.add(key, value) }
    try w.addTensor("token_embd.weight", dimensions: [64, 100], values: random(6400, scale: 1), type: .q8_0)
    if untiedOutput {
        try w.addTensor("output.weight", dimensions: [64, 100], values: random(6400, scale: 0.3), type: .f32)
    }
    try w.addTensor("output_norm.weight", dimensions: [64], values: random(64, scale: 0.2, offset: 1), type: .f32)
    for i in 0..<2 {
        let p = "blk.\(i)."
        try w.addTensor(p + "attn_norm.weight", dimensions: [64], values: random(64, scale: 0.2, offset: 1), type: .f32)
        try w.addTensor(p + "ffn_norm.weight", dimensions: [64], values: random(64, scale: 0.2, offset: 1), type: .f32)
        try w.addTensor(p + "attn_q.weight", dimensions: [64, 64], values: random(4096, scale: 0.4), type: .q4_1)
        try w.addTensor(p + "attn_k.weight", dimensions: [64, 32], values: random(2048, scale: 0.4), type: .q4_1)
        try w.addTensor(p + "attn_v.weight", dimensions: [64, 32], values: random(2048, scale: 0.2), type: .f32)
        try w.addTensor(p + "attn_output.weight", dimensions: [64, 64], values: random(4096, scale: 0.2), type: .q8_0)
        try w.addTensor(p + "ffn_gate.weight", dimensions: [64, 96], values: random(6144, scale: 0.3), type: .q4_1)
        try w.addTensor(p + "ffn_up.weight", dimensions: [64, 96], values: random(6144, scale: 0.3), type: .q4_1)
        try w.addTensor(p + "ffn_down.weight", dimensions: [96, 64], values: random(6144, scale: 0.2), type: .q4_1)
    }
    return try w.readBack()
}

/// An independent float64 Llama forward pass, written per head and per element: weights as
/// [[Double]] rows, RoPE with cos and sin computed at each use, every value in Double.
struct NaiveLlama {
    let file: GGUFFile
    let layers = 2, width = 64, heads = 4, kvHeads = 2, dim = 16, vocab = 100
    let base = 10_000.0, eps = Double(Float(1e-5))

    func matrix(_ name: String) throws -> [[Double]] {
        let t = try file.tensor(named: name)
        let v = try file.dequantize(t).map(Double.init)
        return (0..<t.rowCount).map { Array(v[$0 * t.rowLength..<($0 + 1) * t.rowLength]) }
    }

    func times(_ m: [[Double]], _ x: [Double]) -> [Double] {
        m.map { row in zip(row, x).reduce(0) { $0 + $1.0 * $1.1 } }
    }

    func norm(_ x: [Double], _ w: [Double]) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        return x.indices.map { x[$0] / (ms + eps).squareRoot() * w[$0] }
    }

    /// Rotates (x[2i], x[2i+1]) of one head at position p.
    func rope(_ x: [Double], _ p: Int) -> [Double] {
        var y = x
        for i in 0..<dim / 2 {
            let theta = Double(p) / pow(base, Double(2 * i) / Double(dim))
            y[2 * i] = x[2 * i] * cos(theta) - x[2 * i + 1] * sin(theta)
            y[2 * i + 1] = x[2 * i] * sin(theta) + x[2 * i + 1] * cos(theta)
        }
        return y
    }

    /// Logits per position, and per layer q[head][pos], k[kvHead][pos], v[kvHead][pos].
    func run(_ tokens: [Int32]) throws -> (logits: [[Double]], qkv: [(q: [[[Double]]], k: [[[Double]]], v: [[[Double]]])]) {
        let embed = try matrix("token_embd.weight")
        var xs = tokens.map { embed[Int($0)] }
        var captured: [(q: [[[Double]]], k: [[[Double]]], v: [[[Double]]])] = []
        for l in 0..<layers {
            let p = "blk.\(l)."
            let (wq, wk, wv, wo) = (try matrix(p + "attn_q.weight"), try matrix(p + "attn_k.weight"),
                                    try matrix(p + "attn_v.weight"), try matrix(p + "attn_output.weight"))
            let an = try matrix(p + "attn_norm.weight")[0], fn = try matrix(p + "ffn_norm.weight")[0]
            let n1 = xs.map { norm($0, an) }
            // q[h][t] = rope(Wq rows of head h · n1[t], t)
            let q = (0..<heads).map { h in n1.indices.map { t in rope(times(Array(wq[h * dim..<(h + 1) * dim]), n1[t]), t) } }
            let k = (0..<kvHeads).map { h in n1.indices.map { t in rope(times(Array(wk[h * dim..<(h + 1) * dim]), n1[t]), t) } }
            let v = (0..<kvHeads).map { h in n1.indices.map { t in times(Array(wv[h * dim..<(h + 1) * dim]), n1[t]) } }
            captured.append((q, k, v))
            var attended = [[Double]](repeating: [], count: xs.count)
            for t in xs.indices {
                for h in 0..<heads {
                    let g = h / (heads / kvHeads)
                    let scores = (0...t).map { s in zip(q[h][t], k[g][s]).reduce(0) { $0 + $1.0 * $1.1 } / Double(dim).squareRoot() }
                    let m = scores.max()!
                    let e = scores.map { exp($0 - m) }
                    let z = e.reduce(0, +)
                    attended[t] += (0..<dim).map { d in (0...t).reduce(0) { $0 + e[$1] / z * v[g][$1][d] } }
                }
            }
            for t in xs.indices { xs[t] = zip(xs[t], times(wo, attended[t])).map(+) }
            let (gate, up, down) = (try matrix(p + "ffn_gate.weight"), try matrix(p + "ffn_up.weight"), try matrix(p + "ffn_down.weight"))
            for t in xs.indices {
                let n2 = norm(xs[t], fn)
                let a = zip(times(gate, n2), times(up, n2)).map { g, u in g / (1 + exp(-g)) * u }
                xs[t] = zip(xs[t], times(down, a)).map(+)
            }
        }
        let out = try file.hasTensor(named: "output.weight") ? matrix("output.weight") : embed
        let on = try matrix("output_norm.weight")[0]
        return (xs.map { times(out, norm($0, on)) }, captured)
    }
}

/// ‖a − b‖ / ‖b‖.
func relativeL2(_ a: [Float], _ b: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for (x, y) in zip(a, b) {
        num += (Double(x) - y) * (Double(x) - y)
        den += y * y
    }
    return (num / den).squareRoot()
}

@Suite("Reference forward pass: a tiny random Llama against a naive float64 one")
struct ReferenceModelTests {
    static let tolerance = 1e-4

    @Test("Logits at every position within 1e-4 relative L2 (tied and untied output)", arguments: [false, true])
    func logits(untied: Bool) throws {
        let file = try tinyLlama(seed: untied ? 11 : 7, untiedOutput: untied)
        let model = try ReferenceModel(gguf: file)
        #expect(model.config == LlamaConfig(layerCount: 2, hiddenSize: 64, feedForwardSize: 96, headCount: 4, kvHeadCount: 2,
                                            vocabSize: 100, contextLength: 128, ropeFreqBase: 10_000,
                                            rmsNormEpsilon: Double(Float(1e-5))))
        var rng = SeededGenerator(seed: 3)
        for count in [1, 7, 23] {
            let tokens = (0..<count).map { _ in Int32.random(in: 0..<100, using: &rng) }
            let got = model.logits(tokens: tokens)
            let want = try NaiveLlama(file: file).run(tokens).logits
            #expect(got.count == count && got.allSatisfy { $0.count == 100 })
            for p in 0..<count {
                let error = relativeL2(got[p], want[p])
                #expect(error <= Self.tolerance, "\(count) tokens, position \(p): relative L2 \(error)")
            }
            let last = model.logits(tokens: tokens, positions: count - 1..<count)
            #expect(last == [got[count - 1]])
        }
    }

    @Test("Post-RoPE q, k and v per layer, head-major [heads, N, headDim]")
    func attentionInputs() throws {
        let file = try tinyLlama(seed: 5)
        let model = try ReferenceModel(gguf: file)
        let tokens: [Int32] = [3, 99, 0, 42, 42, 17, 64, 8, 1]
        let want = try NaiveLlama(file: file).run(tokens).qkv
        let got = model.attentionInputs(tokens: tokens)
        #expect(got.map(\.layer) == [0, 1])
        for layer in got {
            #expect(layer.headCount == 4 && layer.kvHeadCount == 2 && layer.tokenCount == 9 && layer.headDim == 16)
            let w = want[layer.layer]
            for (name, values, reference) in [("q", layer.q, w.q), ("k", layer.k, w.k), ("v", layer.v, w.v)] {
                let error = relativeL2(values, reference.flatMap { $0.flatMap { $0 } })
                #expect(error <= Self.tolerance, "layer \(layer.layer) \(name): relative L2 \(error)")
            }
        }
        #expect(model.attentionInputs(tokens: tokens, layers: [1]).map(\.layer) == [1])
        #expect(model.attentionInputs(tokens: tokens, layers: [1]).first?.q == got[1].q)
    }

    @Test("Configuration errors name the architecture or key")
    func configErrors() throws {
        #expect(throws: ModelError.unsupportedArchitecture(path: "<memory>", architecture: "gpt2")) {
            try ReferenceModel(gguf: try tinyLlama(seed: 1, architecture: "gpt2"))
        }
        #expect(throws: GGUFError.missingKey(path: "<memory>", key: "llama.attention.head_count")) {
            try LlamaConfig(gguf: try tinyLlama(seed: 1, dropKey: "llama.attention.head_count"))
        }
        // Optional keys fall back to llama.cpp's defaults.
        let config = try LlamaConfig(gguf: try tinyLlama(seed: 1, dropKey: "llama.vocab_size"))
        #expect(config.vocabSize == 100)
    }
}

/// The reference forward pass on the real SmolLM2-135M-Instruct Q4_1 against llama.cpp's logits
/// (Fixtures/model/smollm2-logits.json, made by make_fixtures.py beside it). llama.cpp rounds
/// activations to 8 bits in its quantised products, so agreement is close, not exact: a float64
/// NumPy pass on the same weights is 0.0341 relative L2 from llama.cpp's last-position logits and
/// agrees on the top token at 15 of 16 positions, so the L2 bound is 4e-2 (2e-2 was the hoped-for
/// figure; the measured floor is above it). Against that NumPy pass (`float64Top5`) the check is
/// tight: the same top token everywhere, top-5 logits within 1e-3.
@Suite("Reference forward pass: the real SmolLM2-135M against llama.cpp",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct ReferenceModelRealTests {
    struct Fixture: Decodable {
        struct Top: Decodable { var position: Int, ids: [Int], logits: [Double] }
        var text: String, tokens: [Int32], top5: [Top], float64Top5: [Top], lastLogits: [Double]
    }

    @Test("Top-1 as llama.cpp at >= 15 of the last 16 positions, last position within 4e-2 relative L2; float64 NumPy's top 5 within 1e-3")
    func agreesWithLlamaCpp() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("model/smollm2-logits.json")))
        let fixture = try JSONDecoder().decode(Fixture.self, from: data)
        let file = try RealModel.file.get()
        #expect(try Tokenizer(gguf: file).encode(fixture.text) == fixture.tokens)
        let model = try ReferenceModel(gguf: file)
        let first = fixture.top5[0].position, n = fixture.tokens.count
        let start = ContinuousClock.now
        let logits = model.logits(tokens: fixture.tokens, positions: first..<n)
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        var agreeing = 0, gaps: [String] = []
        for top in fixture.top5 {
            let row = logits[top.position - first]
            let best = row.indices.max { row[$0] < row[$1] }!
            if best == top.ids[0] { agreeing += 1 } else {
                gaps.append("position \(top.position): ours \(best), llama.cpp \(top.ids) \(top.logits)")
            }
            for (id, value) in zip(top.ids, top.logits) {
                #expect(abs(Double(row[id]) - value) <= 0.1 * max(1, abs(value)), "position \(top.position) token \(id): \(row[id]) vs \(value)")
            }
        }
        var worst = 0.0
        for top in fixture.float64Top5 {
            let row = logits[top.position - first]
            #expect(row.indices.max { row[$0] < row[$1] }! == top.ids[0], "position \(top.position)")
            for (id, value) in zip(top.ids, top.logits) { worst = max(worst, abs(Double(row[id]) - value)) }
        }
        #expect(worst <= 1e-3, "top-5 logits differ from float64 NumPy's by up to \(worst)")
        let error = relativeL2(logits[n - 1 - first], fixture.lastLogits)
        print("ReferenceModel vs llama.cpp: top-1 \(agreeing)/\(fixture.top5.count), last-position relative L2 \(error); vs float64 NumPy: top-5 max |diff| \(worst); \(n) tokens in \(seconds) s \(gaps)")
        #expect(agreeing >= 15, "\(gaps)")
        #expect(error <= 4e-2)
    }
}
