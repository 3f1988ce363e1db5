/// Chooses a device from a user's selector: an index (`0`), `platform:device` (`1:0`), `gpu`,
/// `cpu`, or a case-insensitive substring of the device name or vendor. With no selector the
/// first GPU is chosen, else the first CPU device (PoCL), else the first device.
public struct DeviceSelector: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable read when no selector is given explicitly.
    public static let environmentVariable = "MINFERENCECL_DEVICE"

    /// What a selector's text means.
    public enum Rule: Sendable, Hashable {
        /// Empty, `default` or `auto`: the first GPU, else the first CPU device, else the first device.
        case automatic
        /// A position among all devices of all platforms (``ComputeDevice/index``).
        case index(Int)
        /// `P:D`: device `D` of platform `P`.
        case platformDevice(platform: Int, device: Int)
        /// `gpu` or `cpu`: the first device of that kind.
        case kind(DeviceInfo.Kind)
        /// Anything else: the first device whose name, vendor or platform name contains this
        /// (lowercased) text.
        case nameContains(String)
    }

    /// The rule parsed from ``text``.
    public let rule: Rule
    /// The selector as the user wrote it.
    public let text: String

    /// Parses a selector (see ``Rule``); every text is a valid selector.
    public init(_ text: String) {
        self.text = text
        let t = text.trimmingSpaces()
        let parts = t.split(separator: ":", omittingEmptySubsequences: false)
        if t.isEmpty || t.lowercased() == "default" || t.lowercased() == "auto" {
            rule = .automatic
        } else if let i = Int(t), i >= 0 {
            rule = .index(i)
        } else if parts.count == 2, let p = Int(parts[0]), let d = Int(parts[1]), p >= 0, d >= 0 {
            rule = .platformDevice(platform: p, device: d)
        } else if t.lowercased() == "gpu" {
            rule = .kind(.gpu)
        } else if t.lowercased() == "cpu" {
            rule = .kind(.cpu)
        } else {
            rule = .nameContains(t.lowercased())
        }
    }

    /// The selector of ``Rule/automatic``.
    public static let automatic = DeviceSelector("")

    /// The selector named by `MINFERENCECL_DEVICE`, or automatic.
    public static func fromEnvironment(_ environment: [String: String]) -> DeviceSelector {
        DeviceSelector(environment[environmentVariable] ?? "")
    }

    /// The text, or `default` when it is empty.
    public var description: String { text.isEmpty ? "default" : text }

    /// The first of `devices` that the rule matches. Throws ``DeviceSelectionError`` (listing
    /// `devices`) when none does.
    public func select(from devices: [ComputeDevice]) throws -> ComputeDevice {
        let found: ComputeDevice?
        switch rule {
        case .automatic:
            found = devices.first { $0.info.kind == .gpu } ?? devices.first { $0.info.kind == .cpu } ?? devices.first
        case .index(let i):
            found = devices.indices.contains(i) ? devices[i] : nil
        case .platformDevice(let p, let d):
            found = devices.first { $0.platformIndex == p && $0.indexInPlatform == d }
        case .kind(let kind):
            found = devices.first { $0.info.kind == kind }
        case .nameContains(let needle):
            found = devices.first {
                $0.info.name.lowercased().contains(needle) || $0.info.vendor.lowercased().contains(needle)
                    || $0.info.platformName.lowercased().contains(needle)
            }
        }
        guard let found else { throw DeviceSelectionError(selector: description, devices: devices) }
        return found
    }
}

/// No device matched the selector; the message lists the devices there are.
public struct DeviceSelectionError: Error, CustomStringConvertible, Sendable {
    /// The selector that matched nothing.
    public let selector: String
    /// Every device there is, one line each: index, platform:device, kind, name and vendor.
    public let available: [String]

    init(selector: String, devices: [ComputeDevice]) {
        self.selector = selector
        self.available = devices.map { "\($0.index) (\($0.platformIndex):\($0.indexInPlatform)) \($0.info.kind.rawValue) \($0.info.name) [\($0.info.vendor)]" }
    }

    /// One line with the selector and the devices there are (or how to install a driver).
    public var description: String {
        if available.isEmpty {
            return "no OpenCL device matches '\(selector)': no OpenCL platform or device is installed (install an OpenCL driver, e.g. pocl-opencl-icd)"
        }
        return "no OpenCL device matches '\(selector)'; devices: " + available.joined(separator: "; ")
    }
}
