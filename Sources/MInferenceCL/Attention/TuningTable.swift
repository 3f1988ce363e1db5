import Logging

/// Tile configurations per device as data: rows matched by vendor, then device name, then head
/// dim and path eligibility; the last rows are defaults that are correct on any device. Override
/// for experiments with `MINFERENCECL_TUNING="path=portable,query_tile=64,key_tile=32"`.
public struct TuningTable: Sendable {
    /// One configuration and the devices, head dims and source it applies to.
    public struct Row: Sendable, Hashable {
        /// Case-insensitive substring of the device vendor, or `*`.
        public var vendor: String
        /// Case-insensitive substring of the device name, or `*`.
        public var device: String
        /// The row applies to head dims up to this.
        public var maxHeadDim: Int
        /// The kernel configuration the row gives.
        public var config: KernelConfig
        /// Where the row's numbers come from.
        public var source: String
    }

    /// The rows in match order: the first whose vendor, device, head dim and path eligibility fit
    /// is used.
    public var rows: [Row]

    /// Measured rows first (most specific), defaults last.
    public static let standard = TuningTable(rows: [
        // Hopper (compute capability 9.0, after the context's wgmma check): wgmma, warp-specialised,
        // tuned on the H200 (`minference-bench tune`, 2026-11-30; Benchmarks/RESULTS.md). Dense and
        // A-shape: 2 consumer warpgroups (128 rows) fed by a producer warpgroup over a 4-stage ring
        // of 64-key K/V tiles (384 threads, 144 registers, 162 KiB): 438 TF/s causal fp16 d=128 at
        // 64K, against 202 with one producer warp and 2 stages, 411 with the intra-warpgroup
        // overlap (the two consumer warpgroups already overlap each other) and 231 with 128-key
        // steps (setmaxnreg did not lift ptxas's 168-register cap: spills). The sparse kernels'
        // 64-row work-groups: 1 consumer warpgroup, 2 producer warps, 2 stages, 168 registers so
        // that two work-groups share an SM: vertical-slash / block-sparse 303 / 300 TF/s at 128K,
        // against 208 / 211 with 3 stages (one work-group per SM).
        // Head dim 64: 128-key steps (two source tiles; S is m64n128, half the per-step overhead),
        // 3 stages: 355 TF/s at 64K against 312 with the d = 128 row; the sparse kernels keep that
        // row's 64-key steps.
        Row(vendor: "nvidia", device: "*", maxHeadDim: 64,
            config: KernelConfig(path: .nvidiaWGMMA, queryTile: 128, keysPerStep: 128, stages: 3, rescaleLog2: 8, warpgroups: 2,
                                 producerWarps: 4, sparseStages: 2, sparseMaxRegisters: 168, sparseKeysPerStep: 64, overlap: false,
                                 sparseProducerWarps: 2),
            source: "H200 wgmma tuning (d = 64), 2026-11-30"),
        Row(vendor: "nvidia", device: "*", maxHeadDim: 128,
            config: KernelConfig(path: .nvidiaWGMMA, queryTile: 128, stages: 4, rescaleLog2: 8, warpgroups: 2, producerWarps: 4,
                                 sparseStages: 2, sparseMaxRegisters: 168, overlap: false, sparseProducerWarps: 2),
            source: "H200 wgmma tuning, 2026-11-30"),
        // NVIDIA tensor cores, tuned on an H100 (`minference-bench tune`, 2026-11-27; numbers in
        // Benchmarks/RESULTS.md). Dense: 4 warps x 32 rows reuse every K/V fragment twice, Q is
        // re-read from shared memory (fragments in registers spill), two-stage 64-key K/V
        // pipeline: 264 TFLOP/s causal fp16 d=128 at 64K against 228 for 8 warps x 16 rows, one
        // stage; O rescaled only when a row maximum grows by more than 2^8: 280 against 268
        // (2^6 measured the same). A-shape runs on this dense configuration. The vertical-slash
        // and block-sparse kernels' 64-row blocks run 4 warps x 16 rows with Q in registers (128K
        // structured: 224 / 236 TFLOP/s against 219 / 231 with Q in shared memory; 2 warps x 32
        // rows 149 / 155, or 227 / 229 with 32-key steps).
        Row(vendor: "nvidia", device: "*", maxHeadDim: 128,
            config: KernelConfig(path: .nvidiaMMA, queryTile: 128, mTiles: 2, keysPerStep: 64, queryInShared: true, stages: 2,
                                 sparseMTiles: 1, sparseQueryInShared: false, rescaleLog2: 8),
            source: "H100 tuning, 2026-11-27"),
        // Portable defaults: 32 staged keys keep K+V tiles at 32 KiB for d = 128; d > 128 halves
        // the tile so that local memory stays within the 48 KiB many GPUs offer.
        Row(vendor: "*", device: "*", maxHeadDim: 128, config: KernelConfig(path: .portable, queryTile: 64, keyTile: 32),
            source: "portable default"),
        Row(vendor: "*", device: "*", maxHeadDim: 256, config: KernelConfig(path: .portable, queryTile: 64, keyTile: 16),
            source: "portable default"),
    ])

    /// The first row that matches the device and head dim and whose path applies to the problem,
    /// shrunk to the device's limits. `wgmma`: whether the context's wgmma check passed.
    func config(for device: DeviceInfo, dtype: DType, headDim: Int, wgmma: Bool = false, override: String? = nil,
                logger: Logger? = nil) -> KernelConfig {
        let vendor = device.vendor.lowercased(), name = device.name.lowercased()
        var forcedPath: KernelConfig.Path?
        if let override {
            for pair in override.split(separator: ",") where pair.hasPrefix("path=") {
                forcedPath = KernelConfig.Path(rawValue: String(pair.dropFirst(5)))
            }
        }
        let row = rows.first {
            ($0.vendor == "*" || vendor.contains($0.vendor.lowercased()))
                && ($0.device == "*" || name.contains($0.device.lowercased())) && headDim <= $0.maxHeadDim
                && KernelConfig.applies($0.config.path, device: device, dtype: dtype, headDim: headDim, wgmma: wgmma)
                && (forcedPath == nil || $0.config.path == forcedPath)
        } ?? rows[rows.count - 1]
        var config = row.config
        if let override { config.apply(override: override) }
        if device.maxWorkGroupSize > 0 {
            while config.path != .nvidiaWGMMA, config.threads > device.maxWorkGroupSize, config.queryTile > 16 { config.queryTile /= 2 }
        }
        while config.path == .portable, device.localMemoryBytes > 0, config.localMemoryBytes(headDim: headDim) > device.localMemoryBytes,
              config.keyTile > 4 {
            config.keyTile /= 2
        }
        logger?.debug("tuning row vendor=\(row.vendor) device=\(row.device) d<=\(row.maxHeadDim) (\(row.source)) -> \(config) for \(dtype) d=\(headDim) on \(device.name)")
        return config
    }
}
