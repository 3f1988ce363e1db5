// swift-tools-version:6.0
import PackageDescription

/// Every OpenCL C file in CLKernels/ is embedded into the binary, so programs built from this
/// package never read kernels from the working directory.
let kernelFiles = [
    "attention_common.h",
    "attention_path.h",
    "attention_portable.h",
    "attention_nv_fragments.h",
    "attention_nv_mma.h",
    "attention_nv_wgmma.h",
    "pattern_tiles.h",
    "dense_attention.cl",
    "synthetic_input.cl",
    "vertical_slash_estimate.cl",
    "topk.cl",
    "vertical_slash_index.cl",
    "block_sparse_index.cl",
    "a_shape_attention.cl",
    "sparse_attention.cl",
    "recall.cl",
    "attention_map.cl",
    "wgmma_probe.cl",
    "model_ops.cl",
    "linear_nv_mma.cl",
    "mass_threshold.h",
    "xattention_index.cl",
    "flexprefill_index.cl",
    "block_lists.cl",
    "block_list_attention.cl",
    "nonfinite_keys.cl",
]

let package = Package(
    name: "MInferenceCL",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "MInferenceCL", targets: ["MInferenceCL"]),
        .library(name: "MInferenceCLModel", targets: ["MInferenceCLModel"]),
        .executable(name: "minference-cl", targets: ["minference-cl"]),
        .executable(name: "minference-bench", targets: ["minference-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        // Documentation only: `swift package generate-documentation` (scripts/check-docs.sh).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenCL",
            pkgConfig: "OpenCL",
            providers: [.apt(["ocl-icd-opencl-dev", "opencl-headers"])]
        ),
        .systemLibrary(
            name: "CCLBlast",
            pkgConfig: "clblast",
            providers: [.apt(["libclblast-dev"])]
        ),
        .systemLibrary(
            name: "CPNG",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]
        ),
        .target(
            name: "MInferenceCLKernels",
            path: "CLKernels",
            exclude: [],
            sources: ["KernelSources.swift"],
            resources: kernelFiles.map { .embedInCode($0) }
        ),
        .target(
            name: "MInferenceCL",
            dependencies: [
                "COpenCL",
                "CCLBlast",
                "MInferenceCLKernels",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        // Model files: GGUF reading and writing, dequantisation, the tokenizer. No OpenCL.
        .target(name: "MInferenceCLModel", dependencies: ["MInferenceCL"]),
        .executableTarget(
            name: "minference-cl",
            dependencies: [
                "MInferenceCL",
                "MInferenceCLModel",
                "CPNG",
                .product(name: "RealModule", package: "swift-numerics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "minference-bench",
            dependencies: [
                "MInferenceCL",
                "MInferenceCLModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/minference-bench"
        ),
        .testTarget(
            name: "MInferenceCLTests",
            dependencies: ["MInferenceCL", "MInferenceCLKernels", "MInferenceCLModel", "COpenCL", .product(name: "RealModule", package: "swift-numerics")],
            exclude: ["Fixtures"]
        ),
    ]
)
