import FoundationEssentials

/// One layer's attention inputs on a calibration prompt: a folder holding q.npy `[Hq, N, d]`,
/// k.npy and v.npy `[Hkv, N, d]` (the layout of the real SmolLM2 slices in
/// Tests/MInferenceCLTests/Fixtures). The search reads q and
/// k (recall does not depend on v); `inspect` also reads v for the output error.
public struct CalibrationLayer: Sendable {
    public var folder: String
    public var q: Tensor
    public var k: Tensor
    public var v: Tensor?

    public init(folder: String, q: Tensor, k: Tensor, v: Tensor? = nil) {
        self.folder = folder
        self.q = q
        self.k = k
        self.v = v
    }

    /// Reads `folder`/q.npy and k.npy, and v.npy when `values` is set.
    public static func load(folder: String, values: Bool = false, bf16: Bool = false) throws -> CalibrationLayer {
        guard FileManager.default.fileExists(atPath: folder) else {
            throw TensorFileError.missing(path: folder + " (a layer folder with q.npy, k.npy, v.npy)")
        }
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        return CalibrationLayer(folder: folder, q: try NPYFile.read(base + "q.npy", bf16: bf16), k: try NPYFile.read(base + "k.npy", bf16: bf16),
                                v: values ? try NPYFile.read(base + "v.npy", bf16: bf16) : nil)
    }

    /// The causal prefill problem of the layer; q is `[Hq, N, d]` (or `[1, Hq, N, d]`).
    public func problem() throws -> AttentionProblem {
        guard q.dtype == k.dtype, v.map({ $0.dtype == q.dtype }) ?? true else {
            throw AttentionError.dtype("\(folder): q, k and v must share one dtype; got q \(q.dtype), k \(k.dtype)\(v.map { ", v \($0.dtype)" } ?? "")")
        }
        let problem: AttentionProblem
        do {
            problem = try AttentionProblem(q: q.shape, k: k.shape, v: v?.shape ?? k.shape, dtype: q.dtype)
        } catch let error as AttentionError {
            throw AttentionError.shape("\(folder): \(error)")
        }
        guard problem.batch == 1 else { throw AttentionError.shape("\(folder): a calibration layer holds one sequence; q is \(q.shape)") }
        guard problem.queryLength == problem.keyLength else {
            throw AttentionError.shape("\(folder): q has \(problem.queryLength) positions and k \(problem.keyLength); a calibration prefill has one length")
        }
        return problem
    }
}
