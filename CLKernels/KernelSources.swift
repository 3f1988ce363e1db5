// The OpenCL C files of this folder, embedded into the binary at build time (Package.swift
// lists them as `.embedInCode` resources), keyed by file name.
public enum EmbeddedKernels {
    public static let files: [String: String] = [
        "attention_common.h": text(PackageResources.attention_common_h),
        "attention_path.h": text(PackageResources.attention_path_h),
        "attention_portable.h": text(PackageResources.attention_portable_h),
        "attention_nv_fragments.h": text(PackageResources.attention_nv_fragments_h),
        "attention_nv_mma.h": text(PackageResources.attention_nv_mma_h),
        "attention_nv_wgmma.h": text(PackageResources.attention_nv_wgmma_h),
        "pattern_tiles.h": text(PackageResources.pattern_tiles_h),
        "dense_attention.cl": text(PackageResources.dense_attention_cl),
        "synthetic_input.cl": text(PackageResources.synthetic_input_cl),
        "vertical_slash_estimate.cl": text(PackageResources.vertical_slash_estimate_cl),
        "topk.cl": text(PackageResources.topk_cl),
        "vertical_slash_index.cl": text(PackageResources.vertical_slash_index_cl),
        "block_sparse_index.cl": text(PackageResources.block_sparse_index_cl),
        "a_shape_attention.cl": text(PackageResources.a_shape_attention_cl),
        "sparse_attention.cl": text(PackageResources.sparse_attention_cl),
        "recall.cl": text(PackageResources.recall_cl),
        "attention_map.cl": text(PackageResources.attention_map_cl),
        "wgmma_probe.cl": text(PackageResources.wgmma_probe_cl),
        "model_ops.cl": text(PackageResources.model_ops_cl),
        "linear_nv_mma.cl": text(PackageResources.linear_nv_mma_cl),
        "mass_threshold.h": text(PackageResources.mass_threshold_h),
        "xattention_index.cl": text(PackageResources.xattention_index_cl),
        "flexprefill_index.cl": text(PackageResources.flexprefill_index_cl),
        "block_lists.cl": text(PackageResources.block_lists_cl),
        "block_list_attention.cl": text(PackageResources.block_list_attention_cl),
        "nonfinite_keys.cl": text(PackageResources.nonfinite_keys_cl),
    ]

    private static func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
}
