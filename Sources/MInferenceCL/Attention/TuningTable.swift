import Logging

/// Tile sizes per device as data: rows matched by vendor, then device name, then head dim.
/// The row `*`/`*` is the default that is correct on any device. Override a choice for
/// experiments with `MINFERENCECL_TUNING="query_tile=64,key_tile=32"`.
public struct TuningTable: Sendable {
    public struct Row: Sendable, Hashable {
        /// Case-insensitive substring of the device vendor, or `*`.
        public var vendor: String
        /// Case-insensitive substring of the device name, or `*`.
        public var device: String
        /// The row applies to head dims up to this.
        public var maxHeadDim: Int
        public var config: KernelConfig
    }

    public var rows: [Row]

    /// Measured rows first (most specific), defaults last.
    public static let standard = TuningTable(rows: [
        // Portable defaults: 32 staged keys keep K+V tiles at 32 KiB for d = 128; d > 128 halves
        // the tile so that local memory stays within the 48 KiB many GPUs offer.
        Row(vendor: "*", device: "*", maxHeadDim: 128, config: KernelConfig(queryTile: 64, keyTile: 32, path: .portable)),
        Row(vendor: "*", device: "*", maxHeadDim: 256, config: KernelConfig(queryTile: 64, keyTile: 16, path: .portable)),
    ])

    /// The first row matching the device and head dim, shrunk to the device's limits.
    func config(for device: DeviceInfo, headDim: Int, override: String? = nil, logger: Logger? = nil) -> KernelConfig {
        let vendor = device.vendor.lowercased(), name = device.name.lowercased()
        let row = rows.first {
            ($0.vendor == "*" || vendor.contains($0.vendor.lowercased()))
                && ($0.device == "*" || name.contains($0.device.lowercased())) && headDim <= $0.maxHeadDim
        } ?? rows[rows.count - 1]
        var config = row.config
        if let override { config.apply(override: override) }
        if device.maxWorkGroupSize > 0 {
            while config.queryTile > device.maxWorkGroupSize, config.queryTile > 1 { config.queryTile /= 2 }
        }
        while device.localMemoryBytes > 0, config.localMemoryBytes(headDim: headDim) > device.localMemoryBytes, config.keyTile > 1 {
            config.keyTile /= 2
        }
        logger?.debug("tuning row vendor=\(row.vendor) device=\(row.device) d<=\(row.maxHeadDim) -> \(config) for d=\(headDim) on \(device.name)")
        return config
    }
}

extension KernelConfig {
    /// Applies `key=value` pairs (query_tile, key_tile) from an override string.
    mutating func apply(override: String) {
        for pair in override.split(separator: ",") {
            let kv = pair.split(separator: "=")
            guard kv.count == 2, let value = Int(String(kv[1]).trimmingSpaces()), value > 0 else { continue }
            switch String(kv[0]).trimmingSpaces() {
            case "query_tile": queryTile = value
            case "key_tile": keyTile = min(value, 64)
            default: continue
            }
        }
    }
}
