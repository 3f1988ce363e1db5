/// Per-device facts the sparse dispatch decides with, measured and kept as data: the length
/// below which a dense head beats each pattern (so the engine falls back to dense there), and
/// which estimation path is faster. Rows match vendor and device name substrings; the last row
/// is the default for devices nobody measured.
public struct DeviceProfile: Sendable, Hashable {
    public enum EstimationBackend: String, Sendable, Hashable, CaseIterable {
        /// CLBlast batched SGEMM for the estimation products (the portable path).
        case clblast
        /// This project's kernels (vs_logits, block_scores): no fp32 copy of K.
        case fused
    }

    public var vendor: String
    public var device: String
    /// Dense runs below these lengths; measured with `minference-bench --thresholds`.
    public var denseBelow: [HeadPattern.Kind: Int]
    public var estimation: EstimationBackend
    public var blockScores: EstimationBackend
    /// Where the numbers come from.
    public var source: String

    public func denseThreshold(_ kind: HeadPattern.Kind) -> Int { denseBelow[kind] ?? 0 }

    public static let table: [DeviceProfile] = [
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
