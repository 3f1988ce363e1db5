import Foundation
@testable import MInferenceCL
@testable import MInferenceCLModel
import Testing

/// The device forward pass (weights and KV cache on the device, attention through the engine)
/// against the CPU reference forward pass on a tiny random model written as GGUF.
@Suite("Device forward pass")
struct DeviceModelTests {
    static let tolerance = 1e-4

    @Test func logitsEqualTheReference() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 7))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 64)
        var rng = SeededGenerator(seed: 5)
        let tokens = (0..<37).map { _ in Int32.random(in: 0..<100, using: &rng) }
        let want = reference.logits(tokens: tokens)

        // One call, the last 5 positions.
        let whole = try model.prefill(tokens: tokens, lastLogits: 5)
        #expect(whole.count == 5)
        for (i, row) in whole.enumerated() {
            let error = relativeL2(row, want[32 + i].map(Double.init))
            #expect(error <= Self.tolerance, "position \(32 + i): \(error)")
        }
        // Chunked prefill (chunks of 8 against the cache) gives the same logits.
        model.reset()
        let chunked = try model.prefill(tokens: tokens, chunk: 8, lastLogits: 5)
        for (a, b) in zip(chunked, whole) { #expect(relativeL2(a, b.map(Double.init)) <= 1e-5) }
        // Logits wanted from more positions than the last chunk holds come from the chunks before it.
        model.reset()
        let spanning = try model.prefill(tokens: tokens, chunk: 8, lastLogits: 12)
        #expect(spanning.count == 12)
        for (i, row) in spanning.enumerated() { #expect(relativeL2(row, want[25 + i].map(Double.init)) <= Self.tolerance) }
        // Continuing after the cache: the remaining tokens as a second prefill.
        model.reset()
        _ = try model.prefill(tokens: Array(tokens[0..<20]))
        let rest = try model.prefill(tokens: Array(tokens[20...]), lastLogits: 1)
        #expect(relativeL2(rest[0], want[36].map(Double.init)) <= Self.tolerance)
        #expect(model.position == 37)
    }

    /// fp16 attention inputs (the tensor-core paths' type): q, k and v rounded once, so the logits
    /// move by about fp16's precision, not more.
    @Test func halfPrecisionAttention() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 7))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 64, attentionDType: .f16)
        let tokens = (0..<37).map { Int32(($0 * 31 + 7) % 100) }
        let want = reference.logits(tokens: tokens)
        let got = try model.prefill(tokens: tokens, chunk: 16, lastLogits: 10)
        for (i, row) in got.enumerated() {
            let error = relativeL2(row, want[27 + i].map(Double.init))
            #expect(error <= 5e-3, "position \(27 + i): \(error)")
        }
        #expect(throws: AttentionError.dtype("the model's attention runs in f32 or f16, not bf16")) {
            try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 8, attentionDType: .bf16)
        }
    }

    /// `attentionInputs` (capture's --forward device): every layer's q, k, v as the CPU reference
    /// computes them, head-major, from chunked prefill; the cache is reset first.
    @Test func attentionInputsEqualTheReference() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 9))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 48)
        let tokens = (0..<41).map { Int32(($0 * 17 + 3) % 100) }
        _ = try model.prefill(tokens: [1, 2, 3])
        let got = try model.attentionInputs(tokens: tokens, chunk: 16)
        let want = reference.attentionInputs(tokens: tokens)
        #expect(got.count == want.count && got.count == reference.config.layerCount)
        for (g, w) in zip(got, want) {
            #expect(g.layer == w.layer && g.tokenCount == 41 && g.headCount == w.headCount && g.kvHeadCount == w.kvHeadCount)
            for (name, a, b) in [("q", g.q, w.q), ("k", g.k, w.k), ("v", g.v, w.v)] {
                let error = relativeL2(a, b.map(Double.init))
                #expect(error <= Self.tolerance, "layer \(g.layer) \(name): \(error)")
            }
        }
        #expect(model.position == 41)
    }

    @Test func sparsePlanWithCoveringBudgetsEqualsDense() throws {
        let reference = try ReferenceModel(gguf: try tinyLlama(seed: 9))
        let model = try DeviceModel(model: reference, engine: try TestDevice.engine(), capacity: 128)
        let tokens = (0..<100).map { Int32($0 % 97) }
        let dense = try model.prefill(tokens: tokens, chunk: 40, lastLogits: 3)
        model.reset()
        let plan = LayerPlan(heads: [.aShape(sink: 128, window: 128), .verticalSlash(vertical: 128, slash: 128), .blockSparse(blocks: 3), .dense])
        let sparse = try model.prefill(tokens: tokens, chunk: 40, lastLogits: 3, options: SparseOptions(denseFallback: .never)) { _ in plan }
        for (a, b) in zip(sparse, dense) { #expect(relativeL2(a, b.map(Double.init)) <= 1e-5) }
    }

    @Test func refusesWhatItCannotRun() throws {
        let model = try DeviceModel(model: try ReferenceModel(gguf: try tinyLlama(seed: 3)), engine: try TestDevice.engine(), capacity: 16)
        #expect(throws: AttentionError.invalidArgument("0 cached + 17 new tokens exceed the cache's 16")) {
            try model.prefill(tokens: [Int32](repeating: 1, count: 17))
        }
        #expect(throws: AttentionError.invalidArgument("token 100 at 1 is outside the vocabulary of 100")) {
            try model.prefill(tokens: [1, 100])
        }
    }
}

/// The real SmolLM2-135M on the test device, prefilled in chunks: against the fixture's float64
/// NumPy forward pass on the same weights (Fixtures/model/make_fixtures.py).
@Suite("Device forward pass: the real SmolLM2-135M",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct DeviceModelRealTests {
    @Test func chunkedPrefillAgreesWithFloat64() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("model/smollm2-logits.json")))
        let fixture = try JSONDecoder().decode(ReferenceModelRealTests.Fixture.self, from: data)
        let model = try DeviceModel(model: try ReferenceModel(gguf: try RealModel.file.get()), engine: try TestDevice.engine(),
                                    capacity: fixture.tokens.count)
        let first = fixture.float64Top5[0].position, n = fixture.tokens.count
        let logits = try model.prefill(tokens: fixture.tokens, chunk: 16, lastLogits: n - first)
        var agreeing = 0, worst = 0.0
        for top in fixture.float64Top5 {
            let row = logits[top.position - first]
            if row.indices.max(by: { row[$0] < row[$1] })! == top.ids[0] { agreeing += 1 }
            for (id, value) in zip(top.ids, top.logits) { worst = max(worst, abs(Double(row[id]) - value)) }
        }
        print("DeviceModel (chunks of 16) vs float64 NumPy: top-1 \(agreeing)/\(fixture.float64Top5.count), top-5 max |diff| \(worst)")
        #expect(agreeing == fixture.float64Top5.count)
        #expect(worst <= 2e-3, "top-5 logits differ from float64 by up to \(worst)")
    }
}

/// `minference-cl generate` on the real model: the run goes through, and the logits it writes
/// agree with the float64 forward pass at the last position.
@Suite("minference-cl generate on the real SmolLM2-135M",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct GenerateCommandTests {
    @Test func generatesAndWritesLogits() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("model/smollm2-logits.json")))
        let fixture = try JSONDecoder().decode(ReferenceModelRealTests.Fixture.self, from: data)
        let folder = try TemporaryFolder("cli-generate")
        defer { folder.remove() }
        let prompt = try folder.write("prompt.txt", Array(fixture.text.utf8))
        let result = try runProcess(try BuiltExecutable.path("minference-cl"),
                                    ["generate", "--model", RealModel.path, "--prompt-file", prompt, "--max-new-tokens", "4", "--chunk", "20",
                                     "--logits-out", folder.file("logits.npy")])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("time to first token") && result.stdout.contains("generated 4 tokens"), "\(result.stdout)")
        let logits = try NPYFile.read(folder.file("logits.npy"))
        let n = fixture.tokens.count
        #expect(logits.shape == [min(64, n), 49152])
        let last = Array(logits.floats().suffix(49152))
        let top = try #require(fixture.float64Top5.last)
        #expect(top.position == n - 1 && last.indices.max { last[$0] < last[$1] }! == top.ids[0])
    }
}

/// `minference-cl capture` on the real model: every layer's q, k, v in search's layout, which
/// `search` then reads.
@Suite("minference-cl capture on the real SmolLM2-135M",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct CaptureCommandTests {
    @Test func capturesWhatSearchReads() throws {
        let folder = try TemporaryFolder("cli-capture")
        defer { folder.remove() }
        let prompt = try folder.write("prompt.txt", Array("The quick brown fox jumps over the lazy dog, again and again, until the sun sets.".utf8))
        let tool = try BuiltExecutable.path("minference-cl")
        let capture = try runProcess(tool, ["capture", "--model", RealModel.path, "--prompt-file", prompt, "--out-dir", folder.file("qkv")])
        #expect(capture.status == 0, "\(capture)")
        for layer in [0, 29] {
            let dir = folder.file("qkv/layer" + (layer < 10 ? "0" : "") + "\(layer)")
            let q = try NPYFile.read(dir + "/q.npy"), k = try NPYFile.read(dir + "/k.npy"), v = try NPYFile.read(dir + "/v.npy")
            #expect(q.shape.count == 3 && q.shape[0] == 9 && q.shape[2] == 64 && k.shape == [3, q.shape[1], 64] && v.shape == k.shape)
            #expect(q.floats().allSatisfy(\.isFinite) && k.floats().allSatisfy(\.isFinite))
        }
        let search = try runProcess(tool, ["search", "--layers", folder.file("qkv/layer00"), folder.file("qkv/layer01"),
                                           "--density", "0.5", "--out", folder.file("config.json")])
        #expect(search.status == 0, "\(search)")
        #expect(try PatternConfig.load(path: folder.file("config.json")).patterns(layer: 1, heads: 9).count == 9)
    }
}

/// `minference-cl eval` on the real model: dense against an A-shape whose window misses most of a
/// 300-token prompt, so the measures must show a difference.
@Suite("minference-cl eval on the real SmolLM2-135M",
       .enabled(if: RealModel.isPresent, "needs the model: scripts/fetch-model.sh"))
struct EvalCommandTests {
    @Test func comparesDenseAndSparse() throws {
        let folder = try TemporaryFolder("cli-eval")
        defer { folder.remove() }
        // Prose without repeats (a repeated sentence is predicted from the local window alone).
        let prose = (try? String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8))
            ?? ReadmeProse.text
        let text = try folder.write("text.txt", Array(prose.utf8))
        let result = try runProcess(try BuiltExecutable.path("minference-cl"),
                                    ["eval", "--model", RealModel.path, "--text", text, "--pattern", "a-shape", "--sink", "4", "--window", "32",
                                     "--lengths", "300", "--chunk", "128", "--passkey-depths", "1"], timeout: 600)
        #expect(result.status == 0, "\(result)")
        let row = try #require(result.stdout.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("300 ") })
        let cells = row.split(separator: " ").map(String.init)
        // agreement below 100 % and KL above 0: the A-shape heads did run their pattern.
        let agreement = try #require(cells.first { $0.hasSuffix("%") }.flatMap { Double($0.dropLast()) })
        #expect(agreement < 100 && agreement > 20, "\(row)")
        #expect(row.contains("of 1"), "\(row)")
    }
}

/// A stand-in text where the licence texts are not installed: the README, which has no repeats.
enum ReadmeProse {
    static var text: String {
        (try? String(contentsOfFile: fixturePath("../../../README.md"), encoding: .utf8)) ?? ""
    }
}
