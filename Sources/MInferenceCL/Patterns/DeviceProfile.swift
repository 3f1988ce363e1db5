/// Per-device facts the sparse dispatch decides with, measured and kept as data: the length
/// below which a dense head beats each pattern (so the engine falls back to dense there), and
/// which estimation path is faster. Rows match vendor and device name substrings; the last row
/// is the default for devices nobody measured.
public struct DeviceProfile: Sendable, Hashable {
    /// How the sparse patterns' estimation products (the vertical-slash logits of the last 64
    /// queries against K, the block-sparse pooled Q x pooled K^T) are computed.
    public enum EstimationBackend: String, Sendable, Hashable, CaseIterable {
        /// CLBlast batched SGEMM for the estimation products (the portable path).
        case clblast
        /// This project's kernels (vs_logits, block_scores): no fp32 copy of K.
        case fused
    }

    /// Case-insensitive substring of the device vendor, or `*` for any.
    public var vendor: String
    /// Case-insensitive substring of the device name, or `*` for any.
    public var device: String
    /// Dense runs below these lengths (tokens); measured with `minference-bench thresholds`.
    public var denseBelow: [HeadPattern.Kind: Int]
    /// The vertical-slash estimate's backend (last-query logits).
    public var estimation: EstimationBackend
    /// The block-sparse block scores' backend (pooled Q x pooled K^T).
    public var blockScores: EstimationBackend
    /// Where the numbers come from.
    public var source: String

    /// The length (tokens) below which a head of `kind` runs dense with automatic fallback; 0
    /// when it never does.
    public func denseThreshold(_ kind: HeadPattern.Kind) -> Int { denseBelow[kind] ?? 0 }

    /// The measured rows, most specific first; the last row matches every device.
    public static let table: [DeviceProfile] = [
        // `minference-bench thresholds` (Hq 32, Hkv 8, d 128, fp16, default budgets, structured input)
        // and `run --estimation clblast|fused`, 2026-11-27, commit 670dbfe; Benchmarks/RESULTS.md.
        // A-shape beats dense from 8K (below, its 4096-key budget covers everything), block-sparse
        // from 16K, vertical-slash from 64K (at 32K it is 1.13x slower); CLBlast's logits GEMM is
        // faster than the fused logits at 128K (6.8 vs 8.4 ms), the tiled causal block_scores
        // kernel beats CLBlast's full GEMM (1.5 vs 3.1 ms at 128K, 2.1 vs 5.5 at 1M).
        DeviceProfile(vendor: "nvidia", device: "H100",
                      denseBelow: [.aShape: 8192, .verticalSlash: 65536, .blockSparse: 16384],
                      estimation: .clblast, blockScores: .fused,
                      source: "H100 measured 2026-11-27"),
        // H200, wgmma path (`minference-bench thresholds --lengths 4096 ... 131072` and `run` with
        // and without `--estimation clblast`, 2026-11-30, commit 3e2d8e4; Benchmarks/RESULTS.md):
        // A-shape beats dense from 8K (1.24x; 0.96x at 4K), block-sparse from 32K (1.76x; 0.94x at
        // 16K), vertical-slash from 64K (1.003x; 0.66x at 32K). The tiled causal block_scores kernel
        // beats CLBlast's GEMM (1.38 vs 2.98 ms at 128K, 1.97 vs 4.55 at 1M); the vertical-slash
        // logits stay on CLBlast (the H100's measurement).
        DeviceProfile(vendor: "nvidia", device: "H200",
                      denseBelow: [.aShape: 8192, .verticalSlash: 65536, .blockSparse: 32768],
                      estimation: .clblast, blockScores: .fused,
                      source: "H200 measured 2026-11-30"),
        // PoCL on 2 AMD EPYC cores (Hq 4/2, Hkv 1): A-shape wins from 2K; vertical-slash never won
        // up to 16K and block-sparse not consistently, so both fall back below 32K. The fused
        // logits skip CLBlast's first-use compilation (tens of seconds on PoCL).
        DeviceProfile(vendor: "*", device: "pthread",
                      denseBelow: [.aShape: 2048, .verticalSlash: 32768, .blockSparse: 32768],
                      estimation: .fused, blockScores: .clblast,
                      source: "PoCL measured 2026-11-27"),
        // Devices nobody measured: sparse patterns run as requested; CLBlast is the portable path.
        DeviceProfile(vendor: "*", device: "*",
                      denseBelow: [.aShape: 0, .verticalSlash: 0, .blockSparse: 0],
                      estimation: .clblast, blockScores: .clblast,
                      source: "default (not measured)"),
    ]

    /// The first row whose vendor and device substrings match.
    public static func profile(for info: DeviceInfo) -> DeviceProfile {
        let vendor = info.vendor.lowercased(), name = info.name.lowercased()
        return table.first {
            ($0.vendor == "*" || vendor.contains($0.vendor.lowercased())) && ($0.device == "*" || name.contains($0.device.lowercased()))
        } ?? table[table.count - 1]
    }
}
