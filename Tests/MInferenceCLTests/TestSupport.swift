import FoundationEssentials
import MInferenceCL
import Synchronization
import Testing

/// One engine on the test device (MINFERENCECL_DEVICE, else the default: PoCL in CI), shared by
/// every test so programs are built once per process.
enum TestDevice {
    private static let cached = Mutex<AttentionEngine?>(nil)

    static func engine() throws -> AttentionEngine {
        try cached.withLock { engine in
            if let engine { return engine }
            let made = AttentionEngine(context: try ComputeContext())
            engine = made
            return made
        }
    }
}

/// Random inputs for a problem: N(0, 1) with a per-call seed, scaled so softmax is neither
/// uniform nor one-hot.
struct RandomInputs {
    let q: Tensor
    let k: Tensor
    let v: Tensor

    init(problem: AttentionProblem, seed: UInt64, scale: Float = 1) throws {
        var random = SeededRandom(seed: seed)
        q = try Tensor(shape: problem.queryShape, dtype: problem.inputDType,
                   values: random.normals(problem.queryShape.reduce(1, *), scale: scale))
        k = try Tensor(shape: problem.keyShape, dtype: problem.inputDType,
                   values: random.normals(problem.keyShape.reduce(1, *), scale: scale))
        v = try Tensor(shape: problem.keyShape, dtype: problem.inputDType, values: random.normals(problem.keyShape.reduce(1, *)))
    }
}

/// Query rows to check: all of them for short sequences, else the first and last rows of every
/// head plus a random sample.
func sampledRows(problem: AttentionProblem, limit: Int = 96, seed: UInt64 = 7) -> [(head: Int, query: Int)] {
    let heads = problem.batch * problem.headsQ
    let n = problem.queryLength
    if heads * n <= limit { return (0..<heads).flatMap { h in (0..<n).map { (h, $0) } } }
    var rows: [(Int, Int)] = []
    for h in 0..<heads { rows += [(h, 0), (h, n - 1)] }
    var random = SeededRandom(seed: seed)
    while rows.count < limit { rows.append((Int.random(in: 0..<heads, using: &random), Int.random(in: 0..<n, using: &random))) }
    return rows
}

/// Compares `output` with the float64 reference on `rows`; `keys` gives a row's covered key set
/// (nil: dense).
func compare(output: Tensor, reference: ReferenceAttention, rows: [(head: Int, query: Int)],
             keys: ((Int, Int) -> [Int]?)? = nil) -> ErrorMetrics {
    let values = output.floats()
    let d = reference.problem.headDim
    let n = reference.problem.queryLength
    var metrics = ErrorMetrics()
    for (h, i) in rows {
        let base = (h * n + i) * d
        metrics.add(output: values[base..<base + d], reference: reference.output(head: h, query: i, keys: keys?(h, i)))
    }
    return metrics
}

/// Every element of `output` is finite (poisoned NaNs were all overwritten).
func allFinite(_ output: Tensor) -> Bool { output.floats().allSatisfy(\.isFinite) }

/// A file or folder under Tests/MInferenceCLTests/Fixtures.
func fixturePath(_ name: String, file: String = #filePath) -> String {
    String(file[..<file.lastIndex(of: "/")!]) + "/Fixtures/" + name
}
