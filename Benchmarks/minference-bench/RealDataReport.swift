import ArgumentParser
import MInferenceCL

/// `minference-bench real-report`: each sparse pattern on a real layer (q.npy, k.npy, v.npy,
/// o_ref.npy), per head: density of the kernel's covered set, attention recall (dense softmax
/// mass inside it, float64 over every query) and the output's error against the dense float64
/// reference.
struct RealDataReport: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "real-report", abstract: "Recall, density and error vs dense per pattern and head on a real layer.")

    @OptionGroup var deviceOptions: BenchDeviceOptions
    @Option(name: .long, help: "Layer folder with q.npy, k.npy, v.npy and o_ref.npy.")
    var layer: String
    @Option(name: .long, parsing: .upToNextOption, help: "Patterns as kind:a:b (a-shape:sink:window, vertical-slash:v:s, block-sparse:blocks, tri-shape:sink:window:last; xattention and flexprefill with upstream's defaults, or xattention:threshold:stride:block and flexprefill:gamma:tau).")
    var patterns: [String] = ["a-shape:64:256", "vertical-slash:64:256", "vertical-slash:1000:6096", "block-sparse:8", "block-sparse:100",
                              "tri-shape:128:3968:100", "xattention", "flexprefill"]

    func run() throws {
        let engine = try deviceOptions.engine()
        let q = try NPYFile.read(layer + "/q.npy"), k = try NPYFile.read(layer + "/k.npy"), v = try NPYFile.read(layer + "/v.npy")
        let dense = try NPYFile.read(layer + "/o_ref.npy").floats()
        let problem = try AttentionProblem(q: q.shape, k: k.shape, v: v.shape, dtype: q.dtype)
        let reference = ReferenceAttention(problem: problem, q: q, k: k, v: v)
        let n = problem.queryLength, d = problem.headDim
        print("layer \(layer): Hq=\(problem.headsQ) Hkv=\(problem.headsKV) N=\(n) d=\(d) \(problem.inputDType), device \(engine.context.device.info.name)")
        var table: [[String]] = []
        for spec in patterns {
            let pattern = try Self.parse(spec)
            let (output, report) = try engine.run(q: q, k: k, v: v, plan: .uniform(pattern, heads: problem.headsQ),
                                                  options: SparseOptions(denseFallback: .never, collectIndices: true))
            let values = output.floats()
            var recalls: [Double] = [], errors: [Double] = []
            for head in 0..<problem.headsQ {
                let covered = try Self.coveredKeys(report: report, head: head, pattern: pattern, length: n)
                var recall = 0.0
                for i in 0..<n { recall += reference.recall(head: head, query: i, keys: covered(i)) }
                var metrics = ErrorMetrics()
                let base = head * n * d
                metrics.add(output: values[base..<base + n * d], reference: dense[base..<base + n * d].map(Double.init))
                recalls.append(recall / Double(n))
                errors.append(metrics.relativeL2)
                table.append([spec, "\(head)", Format.fixed(100 * report.density(head: head), 1) + "%",
                              Format.fixed(100 * recall / Double(n), 2) + "%", Format.scientific(metrics.relativeL2)])
            }
            table.append([spec, "mean", Format.fixed(100 * (report.density(of: pattern.kind) ?? 0), 1) + "%",
                          Format.fixed(100 * recalls.reduce(0, +) / Double(recalls.count), 2) + "%",
                          Format.scientific(errors.reduce(0, +) / Double(errors.count))])
        }
        print(Table(header: ["pattern", "head", "density", "recall", "rel err vs dense"], rows: table).render())
    }

    static func parse(_ spec: String) throws -> HeadPattern {
        let parts = spec.split(separator: ":").map(String.init)
        guard let kind = HeadPattern.Kind(name: parts[0]) else { throw ValidationError("unknown pattern in \(spec)") }
        let numbers = parts.dropFirst().compactMap { Int($0) }
        let reals = parts.dropFirst().compactMap { Double($0) }
        switch (kind, reals.count) {
        case (.xAttention, 0): return .defaultXAttention
        case (.xAttention, 3) where numbers.count == 2:
            return .xAttention(XAttentionParameters(threshold: reals[0], stride: numbers[0], blockSize: numbers[1]))
        case (.flexPrefill, 0): return .defaultFlexPrefill
        case (.flexPrefill, 2): return .flexPrefill(FlexPrefillParameters(gamma: reals[0], tau: reals[1]))
        default: break
        }
        switch (kind, numbers.count) {
        case (.triShape, 3): return .triShape(sink: numbers[0], window: numbers[1], last: numbers[2])
        case (.aShape, 2): return .aShape(sink: numbers[0], window: numbers[1])
        case (.verticalSlash, 2): return .verticalSlash(vertical: numbers[0], slash: numbers[1])
        case (.blockSparse, 1): return .blockSparse(blocks: numbers[0])
        case (.dense, 0): return .dense
        default: throw ValidationError("malformed pattern \(spec)")
        }
    }

    /// The covered keys of one query, from the index arrays the run used.
    static func coveredKeys(report: LayerResult, head: Int, pattern: HeadPattern, length n: Int) throws -> (Int) -> [Int] {
        switch pattern {
        case .aShape(let sink, let window): return { PatternReference.coveredKeys(aShapeSink: sink, window: window, query: $0) }
        case .verticalSlash:
            let index = report.indices.verticalSlash.first { $0.head == head }!
            let converted = VerticalSlashIndex(blockCount: index.blockCount, blockOffset: index.blockOffset, columnCount: index.columnCount,
                                               columnIndex: index.columnIndex, rowBlocks: index.rowBlocks, nnzS: index.nnzS, nnzV: index.nnzV)
            return { PatternReference.coveredKeys(index: converted, query: $0) }
        case .blockSparse:
            let selected = report.indices.blockSparse.first { $0.head == head }!.selected.map { $0.map(Int.init) }
            return { PatternReference.coveredKeys(blockSelection: selected, query: $0, length: n) }
        case .dense: return { Array(0...$0) }
        case .triShape, .xAttention, .flexPrefill:
            let coverage = try HeadCoverage(report: report, head: head)
            return { coverage.ranges(query: $0, length: n).flatMap { Array($0) }.sorted() }
        }
    }
}
