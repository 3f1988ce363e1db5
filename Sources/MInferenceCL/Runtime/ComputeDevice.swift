import Synchronization
import COpenCL

/// What MInferenceCL needs to know about an OpenCL device to choose kernels and limits.
public struct DeviceInfo: Sendable, Hashable, Codable {
    /// The device type (`CL_DEVICE_TYPE`).
    public enum Kind: String, Sendable, Codable {
        /// `CL_DEVICE_TYPE_GPU`.
        case gpu
        /// `CL_DEVICE_TYPE_CPU` (PoCL, Intel's CPU runtime).
        case cpu
        /// `CL_DEVICE_TYPE_ACCELERATOR`.
        case accelerator
        /// Any other type.
        case other
    }

    /// `CL_PLATFORM_NAME`, e.g. `NVIDIA CUDA` or `Portable Computing Language`.
    public var platformName: String
    /// `CL_PLATFORM_VERSION`.
    public var platformVersion: String
    /// `CL_DEVICE_NAME`.
    public var name: String
    /// `CL_DEVICE_VENDOR`.
    public var vendor: String
    /// `CL_DEVICE_VENDOR_ID` (PCI vendor ID on GPUs: 0x10DE for NVIDIA), 0 when not reported.
    public var vendorID: UInt32
    /// `CL_DRIVER_VERSION`; part of the program cache key.
    public var driverVersion: String
    /// `CL_DEVICE_VERSION`, e.g. `OpenCL 3.0 CUDA`.
    public var deviceVersion: String
    /// `CL_DEVICE_OPENCL_C_VERSION`.
    public var openCLCVersion: String
    /// `CL_DEVICE_TYPE`.
    public var kind: Kind
    /// `CL_DEVICE_MAX_COMPUTE_UNITS` (0 when not reported).
    public var computeUnits: Int
    /// `CL_DEVICE_MAX_CLOCK_FREQUENCY` in MHz (0 when not reported).
    public var maxClockMHz: Int
    /// `CL_DEVICE_LOCAL_MEM_SIZE` in bytes: shared memory per work-group (0 when not reported).
    public var localMemoryBytes: Int
    /// `CL_DEVICE_GLOBAL_MEM_SIZE` in bytes (0 when not reported).
    public var globalMemoryBytes: Int
    /// `CL_DEVICE_MAX_MEM_ALLOC_SIZE` in bytes: the largest single buffer (0 when not reported).
    public var maxAllocationBytes: Int
    /// `CL_DEVICE_MAX_WORK_GROUP_SIZE` in work-items (0 when not reported).
    public var maxWorkGroupSize: Int
    /// `CL_DEVICE_EXTENSIONS`, split at spaces.
    public var extensions: [String]
    /// NVIDIA compute capability (`cl_nv_device_attribute_query`), when the driver reports it.
    public var nvidiaComputeCapability: ComputeCapability?

    /// An NVIDIA compute capability: 8.0 (A100), 9.0 (H100, H200).
    public struct ComputeCapability: Sendable, Hashable, Codable, CustomStringConvertible {
        /// `CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV`.
        public var major: Int
        /// `CL_DEVICE_COMPUTE_CAPABILITY_MINOR_NV`.
        public var minor: Int
        /// `major.minor`, e.g. `9.0`.
        public var description: String { "\(major).\(minor)" }
    }

    /// Whether ``extensions`` lists `name` (e.g. `cl_khr_fp16`).
    public func hasExtension(_ name: String) -> Bool { extensions.contains(name) }
    /// Whether the device is NVIDIA's: by vendor ID 0x10DE or by the vendor name.
    public var isNVIDIA: Bool { vendorID == 0x10DE || vendor.lowercased().contains("nvidia") }
}

/// One OpenCL device with its position in the platform/device enumeration.
public struct ComputeDevice: Sendable, Hashable, CustomStringConvertible {
    /// Position among all devices of all platforms (the `--device N` index).
    public let index: Int
    /// Position of the device's platform in `clGetPlatformIDs` (the `P` of `--device P:D`).
    public let platformIndex: Int
    /// Position of the device within its platform (the `D` of `--device P:D`).
    public let indexInPlatform: Int
    /// What the driver reports about the device.
    public let info: DeviceInfo
    nonisolated(unsafe) let id: cl_device_id
    nonisolated(unsafe) let platformID: cl_platform_id

    /// The device name, platform and driver version.
    public var description: String { "\(info.name) (\(info.platformName), \(info.driverVersion))" }

    /// Two values are equal when they name the same `cl_device_id`.
    public static func == (a: ComputeDevice, b: ComputeDevice) -> Bool { a.id == b.id }
    /// Hashes the `cl_device_id`, as ``==(_:_:)`` compares it.
    public func hash(into h: inout Hasher) { h.combine(UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(id)))) }

    /// Every device of every platform, in platform order then device order; empty when no OpenCL
    /// platform is installed. Throws ``OpenCLError`` when a platform or device query fails.
    public static func all() throws -> [ComputeDevice] {
        // One enumeration at a time: PoCL answers CL_DEVICE_NOT_FOUND to a clGetDeviceIDs made while
        // another thread's first call is still setting its devices up.
        try enumeration.withLock { _ in try enumerate() }
    }

    private static let enumeration = Mutex(())

    private static func enumerate() throws -> [ComputeDevice] {
        var platformCount: cl_uint = 0
        let status = clGetPlatformIDs(0, nil, &platformCount)
        // The ICD loader reports "no platform" as CL_PLATFORM_NOT_FOUND_KHR: that is an empty list.
        if status == -1001 || platformCount == 0 { return [] }
        try check(status, "clGetPlatformIDs")
        var platforms = [cl_platform_id?](repeating: nil, count: Int(platformCount))
        try check(clGetPlatformIDs(platformCount, &platforms, nil), "clGetPlatformIDs")
        var devices: [ComputeDevice] = []
        for (p, platform) in platforms.enumerated() {
            guard let platform else { continue }
            var count: cl_uint = 0
            let st = clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), 0, nil, &count)
            if st == CL_DEVICE_NOT_FOUND || count == 0 { continue }
            try check(st, "clGetDeviceIDs")
            var ids = [cl_device_id?](repeating: nil, count: Int(count))
            try check(clGetDeviceIDs(platform, cl_device_type(CL_DEVICE_TYPE_ALL), count, &ids, nil), "clGetDeviceIDs")
            for (d, id) in ids.enumerated() {
                guard let id else { continue }
                let info = try DeviceInfo.query(platform: platform, device: id)
                devices.append(ComputeDevice(index: devices.count, platformIndex: p, indexInPlatform: d,
                                             info: info, id: id, platformID: platform))
            }
        }
        return devices
    }
}

extension DeviceInfo {
    static func query(platform: cl_platform_id, device: cl_device_id) throws -> DeviceInfo {
        func platformString(_ param: Int32) throws -> String {
            var size = 0
            try check(clGetPlatformInfo(platform, cl_platform_info(param), 0, nil, &size), "clGetPlatformInfo")
            var bytes = [UInt8](repeating: 0, count: size)
            try check(clGetPlatformInfo(platform, cl_platform_info(param), size, &bytes, nil), "clGetPlatformInfo")
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingSpaces()
        }
        func string(_ param: Int32) throws -> String {
            var size = 0
            try check(clGetDeviceInfo(device, cl_device_info(param), 0, nil, &size), "clGetDeviceInfo")
            var bytes = [UInt8](repeating: 0, count: size)
            try check(clGetDeviceInfo(device, cl_device_info(param), size, &bytes, nil), "clGetDeviceInfo")
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self).trimmingSpaces()
        }
        func scalar<T: FixedWidthInteger>(_ param: Int32, as: T.Type) -> T? {
            var value: T = 0
            let st = clGetDeviceInfo(device, cl_device_info(param), MemoryLayout<T>.size, &value, nil)
            return st == CL_SUCCESS ? value : nil
        }
        let type = scalar(CL_DEVICE_TYPE, as: cl_device_type.self) ?? 0
        let kind: Kind = type & cl_device_type(CL_DEVICE_TYPE_GPU) != 0 ? .gpu
            : type & cl_device_type(CL_DEVICE_TYPE_CPU) != 0 ? .cpu
            : type & cl_device_type(CL_DEVICE_TYPE_ACCELERATOR) != 0 ? .accelerator : .other
        let extensions = try string(CL_DEVICE_EXTENSIONS).split(separator: " ").map(String.init)
        var capability: ComputeCapability?
        if extensions.contains("cl_nv_device_attribute_query"),
           let major = scalar(0x4000, as: cl_uint.self), let minor = scalar(0x4001, as: cl_uint.self) {
            capability = ComputeCapability(major: Int(major), minor: Int(minor))
        }
        return DeviceInfo(
            platformName: try platformString(CL_PLATFORM_NAME),
            platformVersion: try platformString(CL_PLATFORM_VERSION),
            name: try string(CL_DEVICE_NAME),
            vendor: try string(CL_DEVICE_VENDOR),
            vendorID: scalar(CL_DEVICE_VENDOR_ID, as: cl_uint.self) ?? 0,
            driverVersion: try string(CL_DRIVER_VERSION),
            deviceVersion: try string(CL_DEVICE_VERSION),
            openCLCVersion: try string(CL_DEVICE_OPENCL_C_VERSION),
            kind: kind,
            computeUnits: Int(scalar(CL_DEVICE_MAX_COMPUTE_UNITS, as: cl_uint.self) ?? 0),
            maxClockMHz: Int(scalar(CL_DEVICE_MAX_CLOCK_FREQUENCY, as: cl_uint.self) ?? 0),
            localMemoryBytes: Int(scalar(CL_DEVICE_LOCAL_MEM_SIZE, as: cl_ulong.self) ?? 0),
            globalMemoryBytes: Int(scalar(CL_DEVICE_GLOBAL_MEM_SIZE, as: cl_ulong.self) ?? 0),
            maxAllocationBytes: Int(scalar(CL_DEVICE_MAX_MEM_ALLOC_SIZE, as: cl_ulong.self) ?? 0),
            maxWorkGroupSize: Int(scalar(CL_DEVICE_MAX_WORK_GROUP_SIZE, as: Int.self) ?? 0),
            extensions: extensions,
            nvidiaComputeCapability: capability)
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
