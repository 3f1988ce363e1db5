import FoundationEssentials
import MInferenceCL
import Testing

/// MInference's per-model JSON configs: the shipped files read as upstream reads them, the writer
/// round-trips, and every malformed input is refused with an error naming file, layer and head.
@Suite("Pattern config")
struct PatternConfigTests {
    static let llama = fixturePath("configs/Llama_3_8B_Instruct_262k_kv_out_v32_fit_o_best_pattern.json")
    static let phi = fixturePath("configs/Phi_3_mini_128k_instruct_kv_out_v32_fit_o_best_pattern.json")
    static let upstreamDirectory = "/work/shared/data/minference-configs"

    // MARK: Shipped files

    @Test("Llama-3-8B-262k: 32 layers x 32 heads, vertical-slash only, integer scores")
    func llamaFixture() throws {
        let config = try PatternConfig.load(path: Self.llama)
        #expect(config.source == Self.llama)
        #expect(config.layers.count == 32)
        #expect(config.layers.allSatisfy { $0.count == 32 })
        try config.validate(layers: 32, heads: 32)
        // First and last entries of the file: ["vertical_and_slash", 1000, 6096, 336] and 4133248.
        #expect(config.layers[0][0] == .verticalSlash(vertical: 1000, slash: 6096))
        #expect(config.scores[0][0] == 336)
        #expect(config.scores[31][31] == 4133248)
        let all = config.layers.flatMap { $0 }
        #expect(all.count(where: { $0 == .verticalSlash(vertical: 1000, slash: 6096) }) == 473)
        #expect(all.count(where: { $0 == .verticalSlash(vertical: 30, slash: 800) }) == 278)
        #expect(all.allSatisfy { $0.kind == .verticalSlash })
        #expect(try config.patterns(layer: 31, heads: 32) == config.layers[31])
    }

    @Test("Phi-3-mini: 32 layers x 32 heads; its stream_llm heads are A-shape (100, 800)")
    func phiFixture() throws {
        let config = try PatternConfig.load(path: Self.phi)
        #expect(config.layers.count == 32)
        #expect(config.layers.allSatisfy { $0.count == 32 })
        try config.validate(layers: 32, heads: 32)
        let all = config.layers.flatMap { $0 }
        let aShape = all.filter { $0.kind == .aShape }
        #expect(aShape.count == 43)
        #expect(aShape.allSatisfy { $0 == .aShape(sink: 100, window: 800) })
        #expect(all.count(where: { $0.kind == .verticalSlash }) == 981)
        // Layer 8 head "1" is the first stream_llm entry in the file.
        #expect(config.layers[8][1] == .aShape(sink: 100, window: 800))
        #expect(config.layers[8][0].kind == .verticalSlash)
        #expect(config.scores[0][0] == 0.33349305391311646)
        #expect(config.scores.allSatisfy { $0.allSatisfy { $0 != nil } })
    }

    @Test("Every upstream config loads, with one head count for all layers",
          .enabled(if: FileManager.default.fileExists(atPath: upstreamDirectory)))
    func upstreamConfigs() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.upstreamDirectory).filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.count >= 2)
        for name in names {
            let config = try PatternConfig.load(path: Self.upstreamDirectory + "/" + name)
            let heads = config.layers[0].count
            #expect(heads > 0, "\(name)")
            #expect(config.layers.allSatisfy { $0.count == heads }, "\(name)")
            try config.validate(layers: config.layers.count, heads: heads)
        }
    }

    // MARK: Reading rules

    @Test("Budgets may be integral floats; the score is optional; project names are accepted")
    func readingRules() throws {
        let json = """
        [{"1": ["stream_llm", 128.0, 3968, 2],
          "0": ["vertical_and_slash", 1e3, 6096.0, 0.97],
          "2": ["block_sparse", 8, 1, null],
          "3": ["block-sparse", 7, 7],
          "4": ["a-shape", 4, 64],
          "5": ["vertical-slash", 30, 800, 1],
          "6": ["dense", 1, 1, 0.5],
          "7": ["Vertical_And_Slash", 500, 700, -0.25]}]
        """
        let config = try PatternConfig.decode(Array(json.utf8), source: "rules.json")
        #expect(config.source == "rules.json")
        #expect(config.layers == [[
            .verticalSlash(vertical: 1000, slash: 6096),
            .aShape(sink: 128, window: 3968),
            .blockSparse(blocks: 100),
            .blockSparse(blocks: 100),
            .aShape(sink: 4, window: 64),
            .verticalSlash(vertical: 30, slash: 800),
            .dense,
            .verticalSlash(vertical: 500, slash: 700),
        ]])
        #expect(config.scores == [[0.97, 2, nil, nil, nil, 1, 0.5, -0.25]])
    }

    // MARK: Writing

    @Test("Re-encoding Phi-3-mini reproduces upstream's bytes; both fixtures decode back equal",
          arguments: [llama, phi])
    func fixtureRoundTrip(path: String) throws {
        let config = try PatternConfig.load(path: path)
        let bytes = try config.encoded()
        let back = try PatternConfig.decode(bytes, source: "again.json")
        #expect(back.layers == config.layers)
        #expect(back.scores == config.scores)
        if path == Self.phi {
            // Float scores and the stream_llm heads are written exactly as json.dump wrote them.
            let original = [UInt8](try #require(FileManager.default.contents(atPath: path)))
            let firstDifference = zip(bytes, original).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset
            #expect(firstDifference == nil)
            #expect(bytes.count == original.count)
        }
    }

    @Test("encoded() writes upstream names, integer budgets, float scores, heads in order")
    func encodedFormat() throws {
        var config = PatternConfig(layers: [
            [.verticalSlash(vertical: 1000, slash: 6096), .aShape(sink: 100, window: 800), .blockSparse(blocks: 100)],
            [.verticalSlash(vertical: 30, slash: 800), .verticalSlash(vertical: 3500, slash: 100), .aShape(sink: 1, window: 1)],
        ])
        config.scores[0] = [0.97, 336, nil]
        config.scores[1] = [1e-05, nil, 0.5]
        let text = String(decoding: try config.encoded(), as: UTF8.self)
        #expect(text == """
        [{"0": ["vertical_and_slash", 1000, 6096, 0.97], "1": ["stream_llm", 100, 800, 336.0], \
        "2": ["block_sparse", 100, 100, null]}, {"0": ["vertical_and_slash", 30, 800, 1e-05], \
        "1": ["vertical_and_slash", 3500, 100, null], "2": ["stream_llm", 1, 1, 0.5]}]

        """)
        let back = try PatternConfig.decode(Array(text.utf8), source: "x.json")
        #expect(back.layers == config.layers)
        #expect(back.scores == config.scores)
    }

    @Test("write(to:) then load(path:) gives the same patterns and scores")
    func writeAndLoad() throws {
        let config = PatternConfig(layers: (0..<3).map { l in (0..<4).map { .verticalSlash(vertical: 10 + l, slash: 20 + $0) } },
                                   scores: (0..<3).map { l in (0..<4).map { Double(l * 4 + $0) / 8 } })
        let path = FileManager.default.temporaryDirectory.path + "/pattern-config-\(UUID().uuidString).json"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try config.write(to: path)
        let loaded = try PatternConfig.load(path: path)
        #expect(loaded.layers == config.layers)
        #expect(loaded.scores == config.scores)
        #expect(loaded.source == path)
    }

    // MARK: Errors while reading

    @Test("An empty file, or one of only whitespace")
    func emptyFile() {
        for json in ["", " \n\t "] {
            let error = decodeFailure(json)
            #expect(error == .empty(source: "test.json"))
            #expect(error?.description.contains("test.json") == true)
        }
    }

    @Test("A file without layers ([])")
    func noLayers() {
        let error = decodeFailure("[ ]")
        #expect(error == .noLayers(source: "test.json"))
        #expect(error?.description.contains("test.json") == true)
    }

    @Test("Malformed JSON says where", arguments: [
        // (json, line, column)
        ("[{\"0\": [\"vertical_and_slash\", 1000, 6096, 0.5],\n  }]", 2, 3),  // trailing comma
        ("[{\"0\": [\"vertical_and_slash\", NaN, 6096, 0.5]}]", 1, 31),
        ("[{\"0\": [\"vertical_and_slash\", 1000, 6096, 0.5]}", 1, 48),  // unterminated array
        ("[{\"0\" [\"vertical_and_slash\", 1000, 6096, 0.5]}]", 1, 7),
        ("[{\"0\": [\"vertical_and_slash\", 1000, 6096, 0.5]}] x", 1, 50),
        ("[{\"0\": [\"vertical_and_slash\n\", 1, 1]}]", 1, 28),  // raw newline in a string
        ("[{\"0\": [\"vertical_and_slash\", 01, 6096]}]", 1, 32),  // leading zero: '1' after "0"
    ])
    func malformedJSON(json: String, line: Int, column: Int) {
        let error = decodeFailure(json)
        guard case .malformedJSON(let source, let l, let c, _) = error else {
            Issue.record("expected malformedJSON, got \(String(describing: error))")
            return
        }
        #expect(source == "test.json")
        #expect((l, c) == (line, column), "\(error!)")
        #expect(error!.description.contains("test.json: line \(line), column \(column)"))
    }

    @Test("The top level is not an array")
    func notAnArray() {
        let error = decodeFailure("{\"0\": \(entry())}")
        #expect(error == .notAnArray(source: "test.json", found: "an object"))
        #expect(error?.description.contains("test.json") == true)
    }

    @Test("A layer that is not an object")
    func layerNotObject() {
        let error = decodeFailure("[\(layer(2)), [1, 2]]")
        #expect(error == .layerNotObject(source: "test.json", layer: 1, found: "an array of 2"))
        #expect(error?.description.contains("test.json: layer 1") == true)
    }

    @Test("A head key that is not a plain non-negative decimal index",
          arguments: ["-1", "01", "x", "1.0", " 1", "", "+1", "99999999999999999999999"])
    func badHeadKey(key: String) {
        let error = decodeFailure("[\(layer(2)), {\"0\": \(entry()), \"\(key)\": \(entry())}]")
        #expect(error == .badHeadKey(source: "test.json", layer: 1, key: key))
        #expect(error?.description.contains("test.json: layer 1") == true)
        #expect(error?.description.contains("\"\(key)\"") == true)
    }

    @Test("A head listed twice in a layer")
    func duplicateHead() {
        let error = decodeFailure("[{\"0\": \(entry()), \"1\": \(entry()), \"1\": \(entry())}]")
        #expect(error == .duplicateHead(source: "test.json", layer: 0, head: 1))
        #expect(error?.description.contains("test.json: layer 0, head \"1\"") == true)
    }

    @Test("Heads of a layer that are not exactly 0..<H")
    func missingHeads() {
        let gap = decodeFailure("[\(layer(3)), {\"0\": \(entry()), \"2\": \(entry()), \"3\": \(entry())}]")
        #expect(gap == .missingHeads(source: "test.json", layer: 1, missing: [1], present: 3))
        #expect(gap?.description.contains("test.json: layer 1") == true)
        #expect(gap?.description.contains("head 1 is missing") == true)

        let empty = decodeFailure("[{}]")
        #expect(empty == .missingHeads(source: "test.json", layer: 0, missing: [0], present: 0))
    }

    @Test("An entry that is not [pattern, v, s] or [pattern, v, s, score]", arguments: [
        "[\"vertical_and_slash\", 1000]",
        "[\"vertical_and_slash\", 1000, 6096, 0.5, 1]",
        "\"vertical_and_slash\"",
        "{}",
        "[5, 1000, 6096, 0.5]",
        "[\"vertical_and_slash\", 1000, 6096, \"high\"]",
        "[\"vertical_and_slash\", 1000, 6096, 1e999]",
    ])
    func badEntry(json: String) {
        let error = decodeFailure("[\(layer(2)), {\"0\": \(entry()), \"1\": \(json)}]")
        guard case .badEntry(let source, let l, let head, _) = error else {
            Issue.record("expected badEntry, got \(String(describing: error))")
            return
        }
        #expect((source, l, head) == ("test.json", 1, "1"))
        #expect(error!.description.contains("test.json: layer 1, head \"1\""))
    }

    @Test("An unknown pattern name lists the known ones")
    func unknownPattern() {
        // (tri_shape was the example of an unknown name until issue 16 made it a known one;
        // TriangleMix's tri_mix is a layer plan, never a head's pattern.)
        let error = decodeFailure("[{\"0\": \(entry()), \"1\": \(entry("tri_mix"))}]")
        #expect(error == .unknownPattern(source: "test.json", layer: 0, head: "1", name: "tri_mix"))
        let text = error?.description ?? ""
        #expect(text.contains("test.json: layer 0, head \"1\""))
        #expect(text.contains("\"tri_mix\""))
        for name in ["vertical_and_slash", "stream_llm", "block_sparse", "a-shape", "vertical-slash", "block-sparse", "dense"] {
            #expect(text.contains(name), "\(name)")
        }
    }

    @Test("Upstream's whole-model methods in a per-head config are refused, naming the flag that runs them",
          arguments: [("tri_shape", "tri-shape"), ("xattention", "xattention"), ("flexprefill", "flexprefill"),
                      ("Tri-Shape", "tri-shape"), ("flex-prefill", "flexprefill")])
    func wholeModelMethods(name: String, flag: String) {
        let error = decodeFailure("[\(layer(2)), {\"0\": \(entry()), \"1\": \(entry(name, "128", "4096"))}]")
        let reason = "'\(name)' is one of upstream's whole-model methods (attn_type), not a per-head pattern of this format; run it with --pattern \(flag)"
        #expect(error == .badEntry(source: "test.json", layer: 1, head: "1", reason: reason))
        #expect(error?.description == "test.json: layer 1, head \"1\": " + reason)
        // with threshold-like numbers the entry still hears what it is, not "not an integer"
        let fractional = decodeFailure("[{\"0\": \(entry(name, "0.9", "8"))}]")
        #expect(fractional == .badEntry(source: "test.json", layer: 0, head: "0", reason: reason))
    }

    @Test("Kind(name:) knows the prefill methods by this project's names and upstream's attn_type")
    func prefillMethodNames() {
        let names: [(HeadPattern.Kind, [String])] = [
            (.triShape, ["tri-shape", "tri_shape", "trishape", "TRI_SHAPE", "Tri-Shape"]),
            (.xAttention, ["xattention", "x-attention", "XAttention"]),
            (.flexPrefill, ["flexprefill", "flex-prefill", "FlexPrefill"]),
        ]
        for (kind, spellings) in names {
            for name in spellings { #expect(HeadPattern.Kind(name: name) == kind, "\(name)") }
            #expect(kind.selectsBlocks == (kind != .triShape))
            // whole-model methods: an attn_type upstream, no per-head config name
            #expect(kind.upstreamName == nil)
        }
        #expect(HeadPattern.Kind.triShape.upstreamAttentionType == "tri_shape")
        #expect(HeadPattern.Kind.xAttention.upstreamAttentionType == "xattention")
        #expect(HeadPattern.Kind.flexPrefill.upstreamAttentionType == "flexprefill")
        for kind in HeadPattern.Kind.allCases {
            #expect(HeadPattern.Kind(name: kind.rawValue) == kind)
            if let attnType = kind.upstreamAttentionType { #expect(HeadPattern.Kind(name: attnType) == kind) }
        }
        // TriangleMix is a layer plan (TriangleMix, --tri-mix-start), not a head pattern.
        for name in ["tri_mix", "tri_mix_minference", "minference"] { #expect(HeadPattern.Kind(name: name) == nil, "\(name)") }
    }

    struct BudgetCase: Sendable, CustomTestStringConvertible {
        var pattern: String
        var v: String
        var s: String
        var field: String
        var value: String
        var reason: String
        var testDescription: String { "\(pattern) [\(v), \(s)]" }
    }

    @Test("A budget that is not an integer > 0", arguments: [
        BudgetCase(pattern: "vertical_and_slash", v: "-5", s: "6096", field: "v", value: "-5", reason: "not > 0"),
        BudgetCase(pattern: "vertical_and_slash", v: "1000", s: "0", field: "s", value: "0", reason: "not > 0"),
        BudgetCase(pattern: "vertical_and_slash", v: "1000.5", s: "6096", field: "v", value: "1000.5", reason: "not an integer"),
        BudgetCase(pattern: "vertical_and_slash", v: "\"1000\"", s: "6096", field: "v", value: "\"1000\"", reason: "not a number"),
        BudgetCase(pattern: "vertical_and_slash", v: "1000", s: "1e10", field: "s", value: "1e10", reason: "above 2147483647"),
        BudgetCase(pattern: "stream_llm", v: "0", s: "800", field: "v", value: "0", reason: "not > 0"),
        BudgetCase(pattern: "stream_llm", v: "100", s: "-800", field: "s", value: "-800", reason: "not > 0"),
        BudgetCase(pattern: "stream_llm", v: "100", s: "true", field: "s", value: "true", reason: "not a number"),
        BudgetCase(pattern: "block_sparse", v: "null", s: "1", field: "v", value: "null", reason: "not a number"),
        BudgetCase(pattern: "block_sparse", v: "8", s: "0.5", field: "s", value: "0.5", reason: "not an integer"),
    ])
    func badBudget(c: BudgetCase) {
        let error = decodeFailure("[\(layer(1)), {\"0\": \(entry()), \"1\": \(entry(c.pattern, c.v, c.s))}]")
        #expect(error == .badBudget(source: "test.json", layer: 1, head: "1", pattern: c.pattern, field: c.field,
                                    value: c.value, reason: c.reason))
        #expect(error?.description.contains("test.json: layer 1, head \"1\"") == true)
    }

    @Test("Loading a file that does not exist")
    func missingFile() {
        let path = "/nonexistent/pattern-config.json"
        #expect(throws: PatternConfigError.missing(path: path)) { try PatternConfig.load(path: path) }
    }

    // MARK: Errors against the model

    @Test("patterns(layer:heads:) checks the layer index and the head count")
    func patternsChecks() throws {
        let config = try PatternConfig.decode(Array("[\(layer(3)), \(layer(3))]".utf8), source: "test.json")
        #expect(try config.patterns(layer: 1, heads: 3) == Array(repeating: .verticalSlash(vertical: 1000, slash: 6096), count: 3))

        for index in [2, -1] {
            let error = #expect(throws: PatternConfigError.self) { try config.patterns(layer: index, heads: 3) }
            #expect(error == .layerOutOfRange(source: "test.json", layer: index, layers: 2))
            #expect(error?.description.contains("test.json") == true)
            #expect(error?.description.contains("has 2 layers") == true)
        }
        let error = #expect(throws: PatternConfigError.self) { try config.patterns(layer: 1, heads: 4) }
        #expect(error == .headCountMismatch(source: "test.json", layer: 1, configHeads: 3, modelHeads: 4))
        #expect(error?.description.contains("test.json: layer 1") == true)
    }

    @Test("validate(layers:heads:) checks the layer count and every layer's head count")
    func validateChecks() throws {
        let config = try PatternConfig.decode(Array("[\(layer(2)), \(layer(2)), \(layer(3))]".utf8), source: "test.json")
        let layers = #expect(throws: PatternConfigError.self) { try config.validate(layers: 4, heads: 2) }
        #expect(layers == .layerCountMismatch(source: "test.json", configLayers: 3, modelLayers: 4))
        #expect(layers?.description.contains("test.json") == true)

        let heads = #expect(throws: PatternConfigError.self) { try config.validate(layers: 3, heads: 2) }
        #expect(heads == .headCountMismatch(source: "test.json", layer: 2, configHeads: 3, modelHeads: 2))
        #expect(heads?.description.contains("test.json: layer 2") == true)

        // A config without a source is named as in-memory.
        let unnamed = PatternConfig(layers: [[.dense]])
        #expect(throws: PatternConfigError.layerCountMismatch(source: "<memory>", configLayers: 1, modelLayers: 2)) {
            try unnamed.validate(layers: 2, heads: 1)
        }
    }

    // MARK: Errors while writing

    @Test("encoded() refuses what MInference's format cannot carry")
    func unencodable() {
        let cases: [(PatternConfig, Int?, Int?)] = [
            (PatternConfig(layers: [[.defaultVerticalSlash], [.defaultAShape, .defaultVerticalSlash, .dense]]), 1, 2),
            (PatternConfig(layers: [[.blockSparse(blocks: 8)]]), 0, 0),
            (PatternConfig(layers: [[.verticalSlash(vertical: 0, slash: 6096)]]), 0, 0),
            (PatternConfig(layers: [[.aShape(sink: 1, window: Int(Int32.max) + 1)]]), 0, 0),
            (PatternConfig(layers: [[.defaultVerticalSlash]], scores: [[.nan]]), 0, 0),
            (PatternConfig(layers: [[.defaultVerticalSlash], []]), 1, nil),
            (PatternConfig(layers: []), nil, nil),
        ]
        for (config, layer, head) in cases {
            var named = config
            named.source = "out.json"
            let error = #expect(throws: PatternConfigError.self) { try named.encoded() }
            guard case .unencodable(let source, let l, let h, _) = error else {
                Issue.record("expected unencodable, got \(String(describing: error))")
                continue
            }
            #expect(source == "out.json")
            #expect(l == layer && h == head, "\(error!)")
            let text = error!.description
            #expect(text.hasPrefix("out.json"))
            if let layer { #expect(text.contains("layer \(layer)")) }
            if let head { #expect(text.contains("head \"\(head)\"")) }
        }
    }

    @Test("write(to:) into a folder that does not exist")
    func unwritable() {
        let path = "/nonexistent/folder/config.json"
        let error = #expect(throws: PatternConfigError.self) {
            try PatternConfig(layers: [[.defaultVerticalSlash]]).write(to: path)
        }
        guard case .unwritable(let p, _) = error else {
            Issue.record("expected unwritable, got \(String(describing: error))")
            return
        }
        #expect(p == path)
        #expect(error!.description.contains(path))
    }
}

// MARK: Helpers

/// One `[pattern, v, s, score]` entry as JSON text.
private func entry(_ pattern: String = "vertical_and_slash", _ v: String = "1000", _ s: String = "6096",
                   _ score: String = "0.5") -> String {
    "[\"\(pattern)\", \(v), \(s), \(score)]"
}

/// A valid layer of `heads` default entries.
private func layer(_ heads: Int) -> String {
    "{" + (0..<heads).map { "\"\($0)\": \(entry())" }.joined(separator: ", ") + "}"
}

/// The error `json` is refused with under the name `test.json`; records an issue if it loads.
private func decodeFailure(_ json: String, sourceLocation: SourceLocation = #_sourceLocation) -> PatternConfigError? {
    do {
        let config = try PatternConfig.decode(Array(json.utf8), source: "test.json")
        Issue.record("decoded without error: \(config.layers)", sourceLocation: sourceLocation)
    } catch let error as PatternConfigError {
        return error
    } catch {
        Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
