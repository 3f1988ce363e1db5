import FoundationEssentials

/// MInference's per-model pattern config (`minference/configs/*.json`), read unchanged.
///
/// The file is a JSON array with one object per layer; each object maps the query-head index as
/// a decimal string (`"0"`, `"1"`, ...) to `[pattern, v, s, score]`. Entries are read as upstream
/// dispatches them (`minference_prefill_kernel`):
/// - `vertical_and_slash` -> `.verticalSlash(vertical: v, slash: s)`;
/// - `stream_llm` -> `.aShape(sink: v, window: s)`;
/// - `block_sparse` -> `.blockSparse(blocks: 100)`: upstream ignores `v` and `s` and always
///   keeps 100 blocks;
/// - this project's names (`HeadPattern.Kind(name:)`) map the same way, and `dense` -> `.dense`.
///
/// Unlike upstream, which silently falls back to `("vertical_and_slash", 1000, 6096)` for a
/// missing layer or head, the reader is strict: a config that does not describe every head of
/// the model is refused with a `PatternConfigError` naming the file, layer and head. Every entry
/// carries two budgets that must be integers > 0 (floats with integral values such as `1000.0`
/// are accepted), also where the pattern ignores them. The score is optional (3-element entries
/// and `null` are read as nil) and not used at run time.
public struct PatternConfig: Sendable, Equatable {
    /// Layer -> query head -> pattern.
    public var layers: [[HeadPattern]]
    /// Layer -> query head -> the search objective of the winning candidate, if the file has one.
    public var scores: [[Double?]]
    /// Where the config came from (a file path), for messages.
    public var source: String?

    /// Budgets above this are refused, as by `HeadPattern.validate()`.
    static let budgetLimit = Int(Int32.max)

    /// `scores` defaults to no score for every head.
    public init(layers: [[HeadPattern]], scores: [[Double?]]? = nil, source: String? = nil) {
        self.layers = layers
        self.scores = scores ?? layers.map { Array(repeating: nil, count: $0.count) }
        self.source = source
    }

    /// Pattern names the reader accepts (`HeadPattern.Kind(name:)` also takes a few spellings of
    /// these, case-insensitively).
    public static let knownPatternNames: [String] = {
        // the whole-model methods (tri_shape, xattention, flexprefill) have no per-head entry
        let perHead = HeadPattern.Kind.allCases.filter { $0.upstreamAttentionType == nil }
        return perHead.compactMap(\.upstreamName) + perHead.map(\.rawValue)
    }()

    // MARK: Reading

    /// Reads the config file at `path`. Throws ``PatternConfigError``: `missing` or `unreadable`
    /// for the file, and what ``decode(_:source:)`` throws for its contents.
    public static func load(path: String) throws -> PatternConfig {
        guard FileManager.default.fileExists(atPath: path) else { throw PatternConfigError.missing(path: path) }
        guard let data = FileManager.default.contents(atPath: path) else { throw PatternConfigError.unreadable(path: path) }
        return try decode([UInt8](data), source: path)
    }

    /// Parses a config; `source` names it in errors. Throws ``PatternConfigError`` naming the
    /// layer and head of the first entry it refuses (malformed JSON with line and column, a bad
    /// head key, a missing or duplicate head, an unknown pattern name, a budget that is not an
    /// integer from 1 to 2^31 - 1).
    public static func decode(_ bytes: [UInt8], source: String) throws -> PatternConfig {
        guard bytes.contains(where: { !JSONReader.isSpace($0) }) else { throw PatternConfigError.empty(source: source) }
        let root: JSONReader.Value
        do {
            root = try JSONReader.parse(bytes)
        } catch let error as JSONReader.SyntaxError {
            let (line, column) = JSONReader.position(of: error.offset, in: bytes)
            throw PatternConfigError.malformedJSON(source: source, line: line, column: column, reason: error.reason)
        }
        guard case .array(let items) = root else { throw PatternConfigError.notAnArray(source: source, found: root.summary) }
        guard !items.isEmpty else { throw PatternConfigError.noLayers(source: source) }

        var config = PatternConfig(layers: [], scores: [], source: source)
        for (layer, item) in items.enumerated() {
            guard case .object(let members) = item else {
                throw PatternConfigError.layerNotObject(source: source, layer: layer, found: item.summary)
            }
            var entries: [Int: (pattern: HeadPattern, score: Double?)] = [:]
            for (key, value) in members {
                guard let head = headIndex(key) else { throw PatternConfigError.badHeadKey(source: source, layer: layer, key: key) }
                guard entries[head] == nil else { throw PatternConfigError.duplicateHead(source: source, layer: layer, head: head) }
                entries[head] = try entry(value, source: source, layer: layer, head: key)
            }
            // Heads must be exactly 0..<H; an empty layer lacks head 0.
            let missing = (0...(entries.keys.max() ?? 0)).filter { entries[$0] == nil }
            guard missing.isEmpty else {
                throw PatternConfigError.missingHeads(source: source, layer: layer, missing: missing, present: entries.count)
            }
            let heads = (0..<entries.count).map { entries[$0]! }
            config.layers.append(heads.map(\.pattern))
            config.scores.append(heads.map(\.score))
        }
        return config
    }

    /// Head indices are below this. Heads must be exactly 0..<H, so a larger index would make
    /// the reader list (and the model need) that many heads; real models have a few hundred.
    public static let headLimit = 1 << 16

    /// The head index of a key written as upstream writes it (`str(head)`): decimal digits with
    /// no sign, spaces or leading zeros. Upstream looks heads up by that exact string, so any
    /// other spelling would never be found there.
    private static func headIndex(_ key: String) -> Int? {
        guard !key.isEmpty, key.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              key == "0" || !key.hasPrefix("0"), let head = Int(key), head < headLimit else { return nil }
        return head
    }

    /// One `[pattern, v, s, score?]` entry.
    private static func entry(_ value: JSONReader.Value, source: String, layer: Int, head: String) throws -> (pattern: HeadPattern, score: Double?) {
        func bad(_ reason: String) -> PatternConfigError {
            .badEntry(source: source, layer: layer, head: head, reason: reason)
        }
        guard case .array(let fields) = value else { throw bad("expected [pattern, v, s, score], got \(value.summary)") }
        guard fields.count == 3 || fields.count == 4 else {
            throw bad("expected [pattern, v, s, score] (3 or 4 elements), got \(fields.count) elements")
        }
        guard case .string(let name) = fields[0] else { throw bad("the pattern name must be a string, got \(fields[0].summary)") }
        guard let kind = HeadPattern.Kind(name: name) else {
            throw PatternConfigError.unknownPattern(source: source, layer: layer, head: head, name: name)
        }
        // before the budgets: an entry like ["xattention", 0.9, 8] should hear what it is, not "not an integer"
        let wholeModelMethod = bad("'\(name)' is one of upstream's whole-model methods (attn_type), not a per-head pattern of this format; run it with --pattern \(kind.rawValue)")
        if kind.upstreamAttentionType != nil { throw wholeModelMethod }
        func budget(_ field: String, _ value: JSONReader.Value) throws -> Int {
            func reject(_ reason: String) -> PatternConfigError {
                .badBudget(source: source, layer: layer, head: head, pattern: name, field: field, value: value.summary, reason: reason)
            }
            guard case .number(let text) = value, let x = Double(text) else { throw reject("not a number") }
            guard x.isFinite, x == x.rounded(.towardZero) else { throw reject("not an integer") }
            guard x > 0 else { throw reject("not > 0") }
            guard x <= Double(budgetLimit) else { throw reject("above \(budgetLimit)") }
            return Int(x)
        }
        let v = try budget("v", fields[1])
        let s = try budget("s", fields[2])

        var score: Double?
        if fields.count == 4 {
            switch fields[3] {
            case .null: score = nil
            case .number(let text):
                guard let x = Double(text), x.isFinite else { throw bad("the score \(text) is not a finite number") }
                score = x
            default: throw bad("the score must be a number or null, got \(fields[3].summary)")
            }
        }

        let pattern: HeadPattern
        switch kind {
        case .dense: pattern = .dense
        case .aShape: pattern = .aShape(sink: v, window: s)
        case .verticalSlash: pattern = .verticalSlash(vertical: v, slash: s)
        case .blockSparse: pattern = HeadPattern.defaultBlockSparse
        case .triShape, .xAttention, .flexPrefill:
            throw wholeModelMethod
        }
        return (pattern, score)
    }

    // MARK: Checks against the model

    /// The layer's patterns, checked against the model's query-head count. Throws
    /// ``PatternConfigError/layerOutOfRange(source:layer:layers:)`` or
    /// ``PatternConfigError/headCountMismatch(source:layer:configHeads:modelHeads:)``.
    public func patterns(layer: Int, heads: Int) throws -> [HeadPattern] {
        guard layers.indices.contains(layer) else {
            throw PatternConfigError.layerOutOfRange(source: name, layer: layer, layers: layers.count)
        }
        guard layers[layer].count == heads else {
            throw PatternConfigError.headCountMismatch(source: name, layer: layer, configHeads: layers[layer].count, modelHeads: heads)
        }
        return layers[layer]
    }

    /// Checks the whole model up front: `layers` layers of `heads` query heads each. Throws
    /// ``PatternConfigError/layerCountMismatch(source:configLayers:modelLayers:)`` or
    /// ``PatternConfigError/headCountMismatch(source:layer:configHeads:modelHeads:)``.
    public func validate(layers: Int, heads: Int) throws {
        guard self.layers.count == layers else {
            throw PatternConfigError.layerCountMismatch(source: name, configLayers: self.layers.count, modelLayers: layers)
        }
        for layer in self.layers.indices { _ = try patterns(layer: layer, heads: heads) }
    }

    /// The source for messages.
    private var name: String { source ?? "<memory>" }

    // MARK: Writing

    /// MInference's format, as `json.dump` writes it: one line (ended by a newline, as in the
    /// shipped files), heads in numeric order, budgets as integers, scores as floats (`null`
    /// where there is none; upstream unpacks but never reads the score).
    ///
    /// Upstream names are used throughout. `block_sparse` is written as `[100, 100]`: the reader
    /// (ours and upstream's) ignores both numbers, and 100 is the block count it assumes. Patterns
    /// the format cannot carry are refused rather than written as something else: `.dense` (no
    /// upstream name), block-sparse with other than 100 blocks, budgets the reader would refuse,
    /// non-finite scores, and an empty config or layer
    /// (``PatternConfigError/unencodable(source:layer:head:reason:)``).
    public func encoded() throws -> [UInt8] {
        func refuse(_ layer: Int?, _ head: Int?, _ reason: String) -> PatternConfigError {
            .unencodable(source: name, layer: layer, head: head, reason: reason)
        }
        guard !layers.isEmpty else { throw refuse(nil, nil, "the config has no layers") }
        var out = "["
        for (layer, heads) in layers.enumerated() {
            guard !heads.isEmpty else { throw refuse(layer, nil, "the layer has no heads") }
            out += layer == 0 ? "{" : ", {"
            for (head, pattern) in heads.enumerated() {
                let (upstream, v, s): (String, Int, Int)
                switch pattern {
                case .dense:
                    throw refuse(layer, head, "dense has no name in MInference's format")
                case .triShape, .xAttention, .flexPrefill:
                    throw refuse(layer, head, "\(pattern.kind.rawValue) is a whole-model method upstream; MInference's per-head format has no entry for it")
                case .aShape(let sink, let window):
                    (upstream, v, s) = ("stream_llm", sink, window)
                case .verticalSlash(let vertical, let slash):
                    (upstream, v, s) = ("vertical_and_slash", vertical, slash)
                case .blockSparse(let blocks):
                    guard pattern == HeadPattern.defaultBlockSparse else {
                        throw refuse(layer, head, "block-sparse with \(blocks) blocks: MInference's format always means 100")
                    }
                    (upstream, v, s) = ("block_sparse", blocks, blocks)
                }
                guard v > 0, s > 0, v <= Self.budgetLimit, s <= Self.budgetLimit else {
                    throw refuse(layer, head, "\(pattern): budgets must be integers from 1 to \(Self.budgetLimit)")
                }
                let score = scores.indices.contains(layer) && scores[layer].indices.contains(head) ? scores[layer][head] : nil
                if let score, !score.isFinite { throw refuse(layer, head, "score \(score) is not finite") }
                out += head == 0 ? "" : ", "
                out += "\"\(head)\": [\"\(upstream)\", \(v), \(s), \(score.map { "\($0)" } ?? "null")]"
            }
            out += "}"
        }
        out += "]\n"
        return Array(out.utf8)
    }

    /// Writes ``encoded()`` to `path`; the file appears whole or not at all. Throws what
    /// ``encoded()`` throws, or ``PatternConfigError/unwritable(path:reason:)``.
    public func write(to path: String) throws {
        let bytes = try encoded()
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw PatternConfigError.unwritable(path: path, reason: TensorFileError.reason(error))
        }
    }
}

/// A pattern config the library refuses, naming the file and, where relevant, layer and head.
/// Head keys are quoted as written in the file; `layer` and `head` count from 0.
public enum PatternConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No file at `path`.
    case missing(path: String)
    /// The file exists but cannot be read.
    case unreadable(path: String)
    /// The file cannot be written; `reason` is the system's text.
    case unwritable(path: String, reason: String)
    /// No bytes, or only whitespace.
    case empty(source: String)
    /// Not JSON; `line` and `column` (bytes) count from 1.
    case malformedJSON(source: String, line: Int, column: Int, reason: String)
    /// The top level is not a JSON array; `found` summarises what it is.
    case notAnArray(source: String, found: String)
    /// `[]`.
    case noLayers(source: String)
    /// A layer that is not a JSON object; `found` summarises what it is.
    case layerNotObject(source: String, layer: Int, found: String)
    /// A head key that is not written as upstream writes head indices: decimal digits without a
    /// sign, spaces or leading zeros, below ``PatternConfig/headLimit``.
    case badHeadKey(source: String, layer: Int, key: String)
    /// Two keys of one layer name the same head.
    case duplicateHead(source: String, layer: Int, head: Int)
    /// The layer's heads are not exactly 0..<H: `missing` lists the gaps below the highest head.
    case missingHeads(source: String, layer: Int, missing: [Int], present: Int)
    /// An entry that is not `[pattern, v, s]` or `[pattern, v, s, score]` with a string name and
    /// a numeric (or null) score.
    case badEntry(source: String, layer: Int, head: String, reason: String)
    /// A pattern name neither upstream nor this project uses (see
    /// ``PatternConfig/knownPatternNames``).
    case unknownPattern(source: String, layer: Int, head: String, name: String)
    /// `field` is `v` or `s`; `value` is the JSON as written; `reason` says which rule it breaks.
    case badBudget(source: String, layer: Int, head: String, pattern: String, field: String, value: String, reason: String)
    /// ``PatternConfig/patterns(layer:heads:)`` asked for a layer the config does not have.
    case layerOutOfRange(source: String, layer: Int, layers: Int)
    /// The config describes another number of layers than the model has.
    case layerCountMismatch(source: String, configLayers: Int, modelLayers: Int)
    /// The layer describes another number of query heads than the model has.
    case headCountMismatch(source: String, layer: Int, configHeads: Int, modelHeads: Int)
    /// `encoded()` cannot write the config in MInference's format.
    case unencodable(source: String, layer: Int?, head: Int?, reason: String)

    /// One line naming the source, the layer and head where relevant, and the rule broken.
    public var description: String {
        switch self {
        case .missing(let p): "\(p): no such pattern config file"
        case .unreadable(let p): "\(p): cannot be read"
        case .unwritable(let p, let r): "\(p): cannot be written (\(r))"
        case .empty(let s): "\(s): the pattern config is empty; expected a JSON array with one object per layer"
        case .malformedJSON(let s, let line, let column, let r): "\(s): line \(line), column \(column): malformed JSON: \(r)"
        case .notAnArray(let s, let f): "\(s): expected a JSON array with one object per layer at the top level, found \(f)"
        case .noLayers(let s): "\(s): the pattern config has no layers"
        case .layerNotObject(let s, let l, let f):
            "\(s): layer \(l): expected an object mapping head indices to [pattern, v, s, score], found \(f)"
        case .badHeadKey(let s, let l, let k):
            "\(s): layer \(l): head key \(Self.quoted(k)) is not a head index (decimal digits without sign, spaces or leading zeros, below \(PatternConfig.headLimit))"
        case .duplicateHead(let s, let l, let h): "\(s): layer \(l), head \"\(h)\": listed twice"
        case .missingHeads(let s, let l, let m, let p):
            "\(s): layer \(l): heads must be exactly 0..<H, but \(m.count == 1 ? "head" : "heads") \(Self.list(m)) \(m.count == 1 ? "is" : "are") missing (\(p) present)"
        case .badEntry(let s, let l, let h, let r): "\(s): layer \(l), head \(Self.quoted(h)): \(r)"
        case .unknownPattern(let s, let l, let h, let n):
            "\(s): layer \(l), head \(Self.quoted(h)): unknown pattern \(Self.quoted(n)); known: \(PatternConfig.knownPatternNames.joined(separator: ", "))"
        case .badBudget(let s, let l, let h, let p, let f, let v, let r):
            "\(s): layer \(l), head \(Self.quoted(h)): \(p) budget \(f) = \(v) is \(r); budgets must be integers > 0"
        case .layerOutOfRange(let s, let l, let n): "\(s): layer \(l) requested, but the config has \(n) layers (0..<\(n))"
        case .layerCountMismatch(let s, let c, let m): "\(s): the config has \(c) layers, the model \(m)"
        case .headCountMismatch(let s, let l, let c, let m): "\(s): layer \(l): the config has \(c) heads, the model \(m) query heads"
        case .unencodable(let s, let l, let h, let r):
            "\(s)\(l.map { ": layer \($0)" } ?? "")\(h.map { ", head \"\($0)\"" } ?? ""): cannot be written as a MInference config: \(r)"
        }
    }

    fileprivate static func quoted(_ text: String) -> String {
        "\"" + (text.count > 40 ? text.prefix(40) + "..." : text) + "\""
    }

    /// At most 10 numbers, then a count.
    fileprivate static func list(_ numbers: [Int]) -> String {
        let shown = numbers.prefix(10).map(String.init).joined(separator: ", ")
        return numbers.count > 10 ? shown + " and \(numbers.count - 10) more" : shown
    }
}

/// A strict RFC 8259 reader that keeps what the config checks need and JSONDecoder hides:
/// object members in file order with duplicates, each number's text, and where a syntax error is.
fileprivate struct JSONReader {
    enum Value {
        case object([(key: String, value: Value)])
        case array([Value])
        case string(String)
        /// The number as written; `Double(text)` always succeeds on it.
        case number(String)
        case bool(Bool)
        case null

        /// A short rendering for messages.
        var summary: String {
            switch self {
            case .object: "an object"
            case .array(let items): "an array of \(items.count)"
            case .string(let s): PatternConfigError.quoted(s)
            case .number(let text): text
            case .bool(let b): "\(b)"
            case .null: "null"
            }
        }
    }

    struct SyntaxError: Error {
        var offset: Int
        var reason: String
    }

    /// Deep enough for any config (3 levels), shallow enough not to exhaust the stack.
    static let maxDepth = 64

    private let bytes: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws -> Value {
        var reader = JSONReader(bytes)
        reader.skipSpace()
        let value = try reader.value(depth: 0)
        reader.skipSpace()
        guard reader.i == bytes.count else { throw reader.fail("unexpected \(reader.here) after the JSON value") }
        return value
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// 1-based line and byte column of `offset`.
    static func position(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        let before = bytes[..<min(offset, bytes.count)]
        let line = 1 + before.count(where: { $0 == 0x0A })
        let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        return (line, offset - lineStart + 1)
    }

    private var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

    /// The byte at the cursor, for messages.
    private var here: String {
        guard let b = peek else { return "end of file" }
        return b >= 0x20 && b < 0x7F ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16))"
    }

    private func fail(_ reason: String) -> SyntaxError { SyntaxError(offset: i, reason: reason) }

    private mutating func skipSpace() {
        while let b = peek, Self.isSpace(b) { i += 1 }
    }

    private mutating func value(depth: Int) throws -> Value {
        guard depth < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth) levels") }
        guard let b = peek else { throw fail("unexpected end of file, expected a value") }
        switch b {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected \(here), expected a value")
        }
    }

    private mutating func object(depth: Int) throws -> Value {
        i += 1
        var members: [(key: String, value: Value)] = []
        skipSpace()
        if peek == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipSpace()
            guard peek == UInt8(ascii: "\"") else { throw fail("unexpected \(here), expected a string key") }
            let key = try string()
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw fail("unexpected \(here), expected ':' after a key") }
            i += 1
            skipSpace()
            members.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return .object(members)
            default: throw fail("unexpected \(here), expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array(depth: Int) throws -> Value {
        i += 1
        var items: [Value] = []
        skipSpace()
        if peek == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return .array(items)
            default: throw fail("unexpected \(here), expected ',' or ']' in an array")
            }
        }
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard bytes.count - i >= w.count, Array(bytes[i..<i + w.count]) == w else { throw fail("unexpected \(here), expected a value") }
        i += w.count
    }

    private mutating func number() throws -> Value {
        let start = i
        func digits() -> Int {
            let from = i
            while let b = peek, b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") { i += 1 }
            return i - from
        }
        if peek == UInt8(ascii: "-") { i += 1 }
        if peek == UInt8(ascii: "0") {
            i += 1
        } else if digits() == 0 {
            throw fail("unexpected \(here) in a number")
        }
        if peek == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("unexpected \(here), expected digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            i += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("unexpected \(here), expected digits in an exponent") }
        }
        return .number(String(decoding: bytes[start..<i], as: UTF8.self))
    }

    private mutating func string() throws -> String {
        let start = i
        i += 1
        var out: [UInt8] = []
        while true {
            guard let b = peek else { throw SyntaxError(offset: start, reason: "unterminated string") }
            i += 1
            switch b {
            case UInt8(ascii: "\""):
                guard let text = String(validating: out, as: UTF8.self) else {
                    throw SyntaxError(offset: start, reason: "string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                try escape(into: &out)
            case ..<0x20:
                i -= 1
                throw fail("control character 0x\(String(b, radix: 16)) in a string (escape it)")
            default:
                out.append(b)
            }
        }
    }

    private mutating func escape(into out: inout [UInt8]) throws {
        guard let b = peek else { throw fail("unterminated escape") }
        i += 1
        switch b {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(b)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            var unit = try hex4()
            if (0xD800..<0xDC00).contains(unit) {
                // A high surrogate must be followed by an escaped low one.
                guard bytes.count - i >= 2, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw fail("unpaired surrogate in a \\u escape")
                }
                i += 2
                let low = try hex4()
                guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in a \\u escape") }
                unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let scalar = Unicode.Scalar(unit) else { throw fail("unpaired surrogate in a \\u escape") }
            out += Array(String(Character(scalar)).utf8)
        default:
            i -= 1
            throw fail("invalid escape '\\\(Character(Unicode.Scalar(b)))'")
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard bytes.count - i >= 4, let unit = UInt32(String(decoding: bytes[i..<i + 4], as: UTF8.self), radix: 16),
              bytes[i..<i + 4].allSatisfy({ $0 != UInt8(ascii: "+") && $0 != UInt8(ascii: "-") }) else {
            throw fail("expected 4 hex digits after \\u")
        }
        i += 4
        return unit
    }
}
