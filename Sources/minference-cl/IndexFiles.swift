import FoundationEssentials
import MInferenceCL

/// `--indices-out`: the indices each head used, as .npy files (int32), with a manifest.
///
/// vertical-slash head h: head{h}_vertical.npy [V] (ascending), head{h}_slash.npy [S] (diagonal
/// offsets i - j, descending), head{h}_block_count.npy [R], head{h}_block_offset.npy [R, NNZ_S]
/// (key start of each 64-key window), head{h}_column_count.npy [R], head{h}_column_index.npy
/// [R, NNZ_V] (upstream's convert_vertical_slash_indexes layout, unused entries 0).
/// block-sparse head h: head{h}_block_pairs.npy [P, 2] (query block, key block) visited, sorted,
/// and head{h}_block_count.npy [floor(N/64) + 1] blocks per query block.
/// XAttention and FlexPrefill head h: the same two files in their block size (`block_size` in the
/// manifest, 128 by default; ceil(N / B) query blocks), and for FlexPrefill
/// head{h}_vertical_blocks.npy (key blocks, ascending) and head{h}_slash_blocks.npy (slash blocks s,
/// block diagonal nb - 1 - s, ascending), with `query_aware` and `js_distance` in the manifest.
/// With a batch, names start with batch{b}_.
/// Each file is written atomically; if any write fails, the files written so far are removed
/// and the error is thrown. Returns the paths written.
enum IndexFiles {
    static func write(_ report: LayerResult, to folder: String) throws -> [String] {
        var written: [String] = []
        do {
            try write(report, to: folder, written: &written)
        } catch {
            OutputFiles.remove(written)
            throw error
        }
        return written
    }

    private static func write(_ report: LayerResult, to folder: String, written: inout [String]) throws {
        let p = report.problem
        func name(_ head: Int) -> String {
            p.batch == 1 ? "head\(head)" : "batch\(head / p.headsQ)_head\(head % p.headsQ)"
        }
        func write(int32 values: [Int32], shape: [Int], to path: String) throws {
            try NPYFile.write(int32: values, shape: shape, to: path)
            written.append(path)
        }
        var manifest: [String] = []
        for index in report.indices.verticalSlash {
            let base = folder + "/" + name(index.head)
            try write(int32: index.verticals, shape: [index.verticals.count], to: base + "_vertical.npy")
            try write(int32: index.slashOffsets, shape: [index.slashOffsets.count], to: base + "_slash.npy")
            try write(int32: index.blockCount, shape: [index.rowBlocks], to: base + "_block_count.npy")
            try write(int32: index.blockOffset, shape: [index.rowBlocks, index.nnzS], to: base + "_block_offset.npy")
            try write(int32: index.columnCount, shape: [index.rowBlocks], to: base + "_column_count.npy")
            try write(int32: index.columnIndex, shape: [index.rowBlocks, index.nnzV], to: base + "_column_index.npy")
            manifest.append("{\"head\": \(index.head), \"pattern\": \"vertical-slash\", \"prefix\": \"\(name(index.head))\", \"vertical\": \(index.verticals.count), \"slash\": \(index.slashOffsets.count), \"first_row_block\": \(index.firstRowBlock)}")
        }
        for index in report.indices.blockSparse {
            let base = folder + "/" + name(index.head)
            let pairs = index.pairs
            try write(int32: pairs.flatMap { [$0.queryBlock, $0.keyBlock] }, shape: [pairs.count, 2], to: base + "_block_pairs.npy")
            try write(int32: index.selected.map { Int32($0.count) }, shape: [index.selected.count], to: base + "_block_count.npy")
            manifest.append("{\"head\": \(index.head), \"pattern\": \"block-sparse\", \"prefix\": \"\(name(index.head))\", \"pairs\": \(pairs.count), \"first_row_block\": \(index.firstQueryBlock)}")
        }
        // XAttention and FlexPrefill: the block pairs in their own block size (128 by default).
        func writeBlockLists(_ index: BlockSparseHeadIndices, pattern: String, extra: String) throws {
            let base = folder + "/" + name(index.head)
            let pairs = index.pairs
            try write(int32: pairs.flatMap { [$0.queryBlock, $0.keyBlock] }, shape: [pairs.count, 2], to: base + "_block_pairs.npy")
            try write(int32: index.selected.map { Int32($0.count) }, shape: [index.selected.count], to: base + "_block_count.npy")
            manifest.append("{\"head\": \(index.head), \"pattern\": \"\(pattern)\", \"prefix\": \"\(name(index.head))\", \"pairs\": \(pairs.count), \"block_size\": \(index.blockSize), \"first_row_block\": \(index.firstQueryBlock)\(extra)}")
        }
        for index in report.indices.xAttention { try writeBlockLists(index, pattern: "xattention", extra: "") }
        for head in report.indices.flexPrefill {
            let base = folder + "/" + name(head.blocks.head)
            try write(int32: head.verticalBlocks, shape: [head.verticalBlocks.count], to: base + "_vertical_blocks.npy")
            try write(int32: head.slashBlocks, shape: [head.slashBlocks.count], to: base + "_slash_blocks.npy")
            let distance = head.distance.isFinite ? "\(head.distance)" : "null"
            try writeBlockLists(head.blocks, pattern: "flexprefill",
                                extra: ", \"query_aware\": \(head.queryAware), \"js_distance\": \(distance)")
        }
        let text = "[\n  " + manifest.joined(separator: ",\n  ") + "\n]\n"
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: folder + "/indices.json"), options: .atomic)
            written.append(folder + "/indices.json")
        } catch {
            throw TensorFileError.unwritable(path: folder + "/indices.json", reason: TensorFileError.reason(error))
        }
    }
}
