/// How a kernel computes a problem on a device: the tile path and tile sizes. Chosen from the
/// tuning table; the kernel source makes no performance choices.
public struct KernelConfig: Sendable, Hashable, CustomStringConvertible {
    public enum Path: String, Sendable, Hashable, Codable, CaseIterable {
        /// OpenCL C 1.2, one work-item per query row: correct on every device.
        case portable
        /// Inline PTX mma.sync/ldmatrix/cp.async (NVIDIA, compute capability >= 8.0).
        case nvidiaMMA = "nvidia-mma"
    }

    public var path: Path
    /// Query rows per work-group (portable: one work-item each; NVIDIA: 16 per warp).
    public var queryTile: Int
    /// Portable path: keys staged in local memory per step (divides 64).
    public var keyTile: Int

    public init(path: Path, queryTile: Int, keyTile: Int = 32) {
        self.path = path
        self.queryTile = queryTile
        self.keyTile = keyTile
    }

    /// Work-items per work-group.
    public var threads: Int { path == .nvidiaMMA ? 2 * queryTile : queryTile }

    public var description: String {
        path == .nvidiaMMA ? "\(path.rawValue) rows=\(queryTile) warps=\(queryTile / 16)"
            : "\(path.rawValue) rows=\(queryTile) key_tile=\(keyTile)"
    }

    /// The configuration of the sparse kernels: upstream's index lists are per 64 queries.
    var sparse: KernelConfig {
        var c = self
        c.queryTile = 64
        return c
    }

    /// Local memory of the portable attention kernels (K and V tiles in fp32 + key positions).
    func localMemoryBytes(headDim: Int) -> Int {
        path == .nvidiaMMA ? max(queryTile * headDim * 2, 2 * 64 * headDim * 2) + 2 * 64 * 4
            : 2 * keyTile * headDim * 4 + keyTile * 4
    }

    /// The `-D` values this configuration adds to an attention program.
    func defines(problem: AttentionProblem) -> [String: String] {
        var d = ["HEAD_DIM": "\(problem.headDim)", "INPUT_DTYPE": problem.inputDType.kernelName,
                 "OUTPUT_DTYPE": problem.outputDType.kernelName]
        switch path {
        case .portable:
            d["QUERY_TILE"] = "\(queryTile)"
            d["KEY_TILE"] = "\(keyTile)"
        case .nvidiaMMA:
            d["NV_MMA"] = "1"
            d["MMA_WARPS"] = "\(queryTile / 16)"
        }
        return d
    }

    /// Whether the NVIDIA tensor-core path can compute this problem on this device: NVIDIA with
    /// compute capability >= 8.0 (mma.sync m16n8k16, ldmatrix, cp.async), 16-bit inputs, head dim
    /// 64 or 128.
    static func nvidiaMMAApplies(device: DeviceInfo, dtype: DType, headDim: Int) -> Bool {
        guard device.isNVIDIA, let cc = device.nvidiaComputeCapability, cc.major >= 8 else { return false }
        return (dtype == .f16 || dtype == .bf16) && (headDim == 64 || headDim == 128)
    }
}
