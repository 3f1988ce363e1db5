/// How a kernel computes a problem on a device: the tile path and tile sizes. Chosen from the
/// tuning table; the kernel source makes no performance choices.
public struct KernelConfig: Sendable, Hashable, CustomStringConvertible {
    /// Which tile code the kernels compile (attention_path.h); the raw value is the name used by
    /// `MINFERENCECL_TUNING=path=...`, logs and `minference-cl devices`.
    public enum Path: String, Sendable, Hashable, Codable, CaseIterable {
        /// OpenCL C 1.2, one work-item per query row: correct on every device.
        case portable
        /// Inline PTX mma.sync/ldmatrix/cp.async (NVIDIA, compute capability >= 8.0).
        case nvidiaMMA = "nvidia-mma"
        /// Hopper's wgmma with a warp-specialised cp.async/mbarrier pipeline, built for sm_90a in
        /// two stages (NVIDIA, compute capability 9.0, after the context's wgmma check passed).
        case nvidiaWGMMA = "nvidia-wgmma"

        /// Whether the path runs NVIDIA tensor-core instructions.
        public var isNVIDIA: Bool { self != .portable }
    }

    /// The tile path; the fields below marked for one path are ignored by the others.
    public var path: Path
    /// Query rows per work-group (portable: one work-item each; NVIDIA: 16 * mTiles per warp).
    public var queryTile: Int
    /// Portable path: keys staged in local memory per step (divides 64).
    public var keyTile: Int
    /// NVIDIA path: 16-row m-tiles per warp (1 or 2).
    public var mTiles: Int
    /// NVIDIA paths: keys per pipeline step (mma.sync: 32 or 64; wgmma: 64 or 128).
    public var keysPerStep: Int
    /// NVIDIA path: re-read Q fragments from shared memory instead of holding them in registers.
    public var queryInShared: Bool
    /// NVIDIA path: K/V pipeline stages (2: the next step loads while this one computes).
    public var stages: Int
    /// NVIDIA path: m-tiles per warp of the sparse kernels, whose work-groups are 64 rows
    /// (1: 4 warps, 2: 2 warps).
    public var sparseMTiles: Int
    /// NVIDIA path: `queryInShared` of the sparse kernels (nil: the same as the dense kernel's).
    /// Q in registers leaves their 64-row work-groups 16 KiB less shared memory.
    public var sparseQueryInShared: Bool?
    /// NVIDIA paths: rescale O only when a row maximum grows by more than 2^rescaleLog2 (0: every
    /// step, as FlashAttention-2 does).
    public var rescaleLog2: Int
    /// wgmma path: consumer warpgroups (64 query rows each) of the dense and A-shape kernels; the
    /// sparse kernels run one (upstream's 64-row index granularity).
    public var warpgroups: Int
    /// wgmma path: warps issuing the K/V copies (1, 2, or 4: a producer warpgroup).
    public var producerWarps: Int
    /// wgmma path: registers per thread the producer warpgroup keeps after `setmaxnreg`, the rest of
    /// the entry's count (`maxRegisters`) going to the consumers; needs `producerWarps` 4 and
    /// `maxRegisters`. nil: no setmaxnreg.
    public var producerRegisters: Int?
    /// wgmma path: `stages` of the sparse kernels (nil: the same as the dense kernel's).
    public var sparseStages: Int?
    /// wgmma path: registers per thread declared on the dense and A-shape kernels' entries (nil:
    /// the assembler's choice).
    public var maxRegisters: Int?
    /// wgmma path: `maxRegisters` of the sparse kernels (a cap lets two 64-row work-groups share an SM).
    public var sparseMaxRegisters: Int?
    /// wgmma path: `keysPerStep` (64 or 128) of the sparse kernels (nil: the same as the dense kernel's).
    public var sparseKeysPerStep: Int?
    /// wgmma path: `producerWarps` of the sparse kernels (nil: the same as the dense kernel's).
    public var sparseProducerWarps: Int?
    /// wgmma path: `overlap` of the sparse kernels (nil: the same as the dense kernel's).
    public var sparseOverlap: Bool?
    /// wgmma path: the softmax of step u runs while step u - 1's O += P V does (FlashAttention-3's
    /// intra-warpgroup overlap); false: one product at a time.
    public var overlap: Bool

    /// A configuration with every field given; the defaults are those of a single-stage,
    /// one-m-tile kernel (see each property for its meaning and typical values).
    public init(path: Path, queryTile: Int, keyTile: Int = 32, mTiles: Int = 1, keysPerStep: Int = 64,
                queryInShared: Bool = false, stages: Int = 1, sparseMTiles: Int = 1, sparseQueryInShared: Bool? = nil,
                rescaleLog2: Int = 0, warpgroups: Int = 2, producerWarps: Int = 1, sparseStages: Int? = nil,
                maxRegisters: Int? = nil, sparseMaxRegisters: Int? = nil, sparseKeysPerStep: Int? = nil, overlap: Bool = true,
                producerRegisters: Int? = nil, sparseProducerWarps: Int? = nil, sparseOverlap: Bool? = nil) {
        self.path = path
        self.queryTile = queryTile
        self.keyTile = keyTile
        self.mTiles = mTiles
        self.keysPerStep = keysPerStep
        self.queryInShared = queryInShared
        self.stages = stages
        self.sparseMTiles = sparseMTiles
        self.sparseQueryInShared = sparseQueryInShared
        self.rescaleLog2 = rescaleLog2
        self.warpgroups = warpgroups
        self.producerWarps = producerWarps
        self.sparseStages = sparseStages
        self.maxRegisters = maxRegisters
        self.sparseMaxRegisters = sparseMaxRegisters
        self.sparseKeysPerStep = sparseKeysPerStep
        self.overlap = overlap
        self.producerRegisters = producerRegisters
        self.sparseProducerWarps = sparseProducerWarps
        self.sparseOverlap = sparseOverlap
    }

    /// wgmma path: the consumers' registers per thread after `setmaxnreg`: every thread's share of
    /// the entry's count, less what the producers keep, in steps of 8 (at most 240). nil: none.
    var consumerRegisters: Int? {
        guard path == .nvidiaWGMMA, let producerRegisters, let maxRegisters, producerWarps == 4 else { return nil }
        return min(240, (maxRegisters * threads - producerRegisters * 128) / (128 * warpgroups) / 8 * 8)
    }

    /// Warps per work-group on the NVIDIA paths (wgmma: 4 per consumer warpgroup and the producers).
    var warps: Int {
        path == .nvidiaWGMMA ? 4 * warpgroups + producerWarps : max(1, queryTile / (16 * mTiles))
    }

    /// Work-items per work-group.
    public var threads: Int { path.isNVIDIA ? 32 * warps : queryTile }

    /// The path and its fields in `key=value` form, as logged with the tuning row that chose them.
    public var description: String {
        switch path {
        case .nvidiaMMA:
            "\(path.rawValue) rows=\(queryTile) warps=\(warps) m_tiles=\(mTiles) kv=\(keysPerStep) stages=\(stages)\(queryInShared ? " q_smem" : "")"
                + " sparse_m_tiles=\(sparseMTiles)\(sparse.queryInShared ? " sparse_q_smem" : "")"
                + (rescaleLog2 > 0 ? " rescale=2^\(rescaleLog2)" : "")
        case .nvidiaWGMMA:
            "\(path.rawValue) rows=\(queryTile) warpgroups=\(warpgroups)+\(producerWarps) producer warp(s) kv=\(keysPerStep) stages=\(stages)"
                + (maxRegisters.map { " maxnreg=\($0)" } ?? "") + (overlap ? " overlap" : "")
                + (consumerRegisters.map { " setmaxnreg=\(producerRegisters ?? 0)/\($0)" } ?? "")
                + " sparse: \(sparseProducerWarps ?? producerWarps) producer warp(s) kv=\(sparseKeysPerStep ?? keysPerStep) stages=\(sparseStages ?? stages)"
                + ((sparseOverlap ?? overlap) ? " overlap" : "")
                + (sparseMaxRegisters.map { " maxnreg=\($0)" } ?? "")
                + (rescaleLog2 > 0 ? " rescale=2^\(rescaleLog2)" : "")
        case .portable: "\(path.rawValue) rows=\(queryTile) key_tile=\(keyTile)"
        }
    }

    /// The configuration of the sparse kernels: upstream's index lists are per 64 queries.
    var sparse: KernelConfig {
        var c = self
        c.queryTile = 64
        c.mTiles = sparseMTiles
        c.queryInShared = sparseQueryInShared ?? queryInShared
        if path == .nvidiaWGMMA {
            c.warpgroups = 1
            c.stages = sparseStages ?? stages
            c.maxRegisters = sparseMaxRegisters
            c.keysPerStep = sparseKeysPerStep ?? keysPerStep
            c.producerWarps = sparseProducerWarps ?? producerWarps
            c.overlap = sparseOverlap ?? overlap
        }
        return c
    }

    /// Local memory the attention kernels use.
    func localMemoryBytes(headDim: Int) -> Int {
        switch path {
        case .nvidiaWGMMA:
            return (queryTile * headDim + stages * 2 * keysPerStep * headDim) * 2 + stages * (16 + (keysPerStep + 1) * 4)
        case .nvidiaMMA:
            let q = queryTile * headDim * 2, kv = 2 * stages * keysPerStep * headDim * 2
            return (queryInShared ? q + kv : max(q, kv)) + (stages + 1) * (keysPerStep + 1) * 4
        case .portable:
            return 2 * keyTile * headDim * 4 + keyTile * 4
        }
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
            d["MMA_WARPS"] = "\(warps)"
            d["MMA_M_TILES"] = "\(mTiles)"
            d["MMA_KV"] = "\(keysPerStep)"
            d["MMA_Q_IN_SMEM"] = queryInShared ? "1" : "0"
            d["MMA_STAGES"] = "\(stages)"
            d["MMA_RESCALE_LOG2"] = "\(rescaleLog2)"
        case .nvidiaWGMMA:
            d["NV_WGMMA"] = "1"
            d["WG_CONSUMERS"] = "\(warpgroups)"
            d["WG_STAGES"] = "\(stages)"
            d["WG_PRODUCER_WARPS"] = "\(producerWarps)"
            d["WG_KV"] = "\(keysPerStep)"
            d["WG_OVERLAP"] = overlap ? "1" : "0"
            if let consumerRegisters, let producerRegisters {
                d["WG_PRODUCER_REGISTERS"] = "\(producerRegisters)"
                d["WG_CONSUMER_REGISTERS"] = "\(consumerRegisters)"
            }
            d["MMA_RESCALE_LOG2"] = "\(rescaleLog2)"
        }
        return d
    }

    /// The build options of an attention program for `problem`: the `-D` values, and the sm_90a
    /// two-stage build on the wgmma path.
    func buildOptions(problem: AttentionProblem) -> BuildOptions {
        BuildOptions(defines: defines(problem: problem), sm90a: path == .nvidiaWGMMA ? Sm90aBuild(maxRegisters: maxRegisters) : nil)
    }

    /// Whether the NVIDIA tensor-core path can compute this problem on this device: NVIDIA with
    /// compute capability >= 8.0 (mma.sync m16n8k16, ldmatrix, cp.async), 16-bit inputs, head dim
    /// 64 or 128.
    static func nvidiaMMAApplies(device: DeviceInfo, dtype: DType, headDim: Int) -> Bool {
        guard device.isNVIDIA, let cc = device.nvidiaComputeCapability, cc.major >= 8 else { return false }
        return (dtype == .f16 || dtype == .bf16) && (headDim == 64 || headDim == 128)
    }

    /// Whether `path` can compute this problem on this device; `wgmma` says whether the context's
    /// wgmma check passed (`ComputeContext.wgmma`), which implies compute capability 9.0.
    static func applies(_ path: Path, device: DeviceInfo, dtype: DType, headDim: Int, wgmma: Bool) -> Bool {
        switch path {
        case .portable: true
        case .nvidiaMMA: nvidiaMMAApplies(device: device, dtype: dtype, headDim: headDim)
        case .nvidiaWGMMA: wgmma && nvidiaMMAApplies(device: device, dtype: dtype, headDim: headDim)
        }
    }
}

extension KernelConfig {
    /// Applies `key=value` pairs from an override string: query_tile, key_tile, m_tiles, kv, q_smem,
    /// stages, sparse_m_tiles, sparse_q_smem, rescale; on the wgmma path also warpgroups,
    /// producer_warps, producer_regs, sparse_producer_warps, sparse_kv, sparse_stages, overlap,
    /// sparse_overlap, maxnreg, sparse_maxnreg (0: none).
    mutating func apply(override: String) {
        for pair in override.split(separator: ",") {
            let kv = pair.split(separator: "=")
            guard kv.count == 2, let value = Int(String(kv[1]).trimmingSpaces()), value >= 0 else { continue }
            switch String(kv[0]).trimmingSpaces() {
            case "query_tile" where value > 0: queryTile = value
            case "key_tile" where value > 0: keyTile = min(value, 64)
            case "m_tiles" where value == 1 || value == 2: mTiles = value
            case "kv" where path == .nvidiaWGMMA ? value == 64 || value == 128 : value == 32 || value == 64: keysPerStep = value
            case "sparse_kv" where value == 64 || value == 128: sparseKeysPerStep = value
            case "overlap": overlap = value != 0
            case "sparse_overlap": sparseOverlap = value != 0
            case "q_smem": queryInShared = value != 0
            case "stages" where path == .nvidiaWGMMA ? (2...4).contains(value) : value == 1 || value == 2: stages = value
            case "sparse_stages" where (2...4).contains(value): sparseStages = value
            case "warpgroups" where value == 1 || value == 2:
                warpgroups = value
                if path == .nvidiaWGMMA { queryTile = 64 * value }
            case "producer_warps" where value == 1 || value == 2 || value == 4: producerWarps = value
            case "sparse_producer_warps" where value == 1 || value == 2 || value == 4: sparseProducerWarps = value
            case "producer_regs" where value == 0 || (24...64).contains(value) && value % 8 == 0:
                producerRegisters = value == 0 ? nil : value
            case "maxnreg" where value == 0 || (24...255).contains(value): maxRegisters = value == 0 ? nil : value
            case "sparse_maxnreg" where value == 0 || (24...255).contains(value): sparseMaxRegisters = value == 0 ? nil : value
            case "sparse_m_tiles" where value == 1 || value == 2: sparseMTiles = value
            case "sparse_q_smem": sparseQueryInShared = value != 0
            case "rescale" where value <= 16: rescaleLog2 = value
            default: continue
            }
        }
    }
}
