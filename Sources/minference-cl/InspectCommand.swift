import ArgumentParser
import FoundationEssentials
import MInferenceCL

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Pictures of a layer's attention beside each head's covered mask, with a recall/error table per head.",
        discussion: """
        Runs the layer (q.npy, k.npy, v.npy in --layer) with the patterns of --config's layer --layer-index, or one --pattern
        for every head, and dense attention. Writes into --out-dir: head<H>.png per head (left: the dense causal attention
        map pooled to --size x --size cells, magma on a log scale spanning --decades powers of ten below the head's largest
        cell, white above the diagonal; right: the share of each cell's causal pairs the head's kernel covers, amber =
        covered, dark = dropped), overview.png (every head, smaller) and summary.txt (the table printed: recall = mean share
        of the dense softmax mass inside the covered set, density = covered share of the causal pairs, FLOPs = visited
        64x64 tiles as a share of dense, rel err = |sparse - dense| / |dense| of the output).
        """)

    @OptionGroup var deviceOptions: DeviceOptions

    @Option(name: .long, help: "Layer folder with q.npy, k.npy, v.npy.")
    var layer: String
    @Option(name: .long, help: "MInference JSON config with the layer's patterns.")
    var config: String?
    @Option(name: .long, parsing: .unconditional, help: "Layer of --config that --layer holds.")
    var layerIndex: Int?
    @OptionGroup var patternOptions: PatternOptions
    @Option(name: .long, help: "Folder for the pictures (created if missing).")
    var outDir: String
    @Option(name: .long, parsing: .unconditional, help: "Cells per side of a head's pictures (clamped to N).")
    var size: Int = 512
    @Option(name: .long, help: "Pooling of the attention map: max or mean.")
    var pooling: String = "max"
    @Option(name: .long, parsing: .unconditional, help: "Powers of ten the colour scale spans below each head's largest cell.")
    var decades: Double = 4
    @Option(name: .long, help: "Heads that get a picture of their own, comma-separated (default: all).")
    var heads: String?
    @Option(name: .long, parsing: .unconditional, help: "Cells per side of each head in overview.png.")
    var overviewSize: Int = 128
    @Flag(name: .long, help: "Read 16-bit integer/void .npy words as bfloat16.")
    var bf16 = false

    func run() throws {
        try reportingErrors {
            guard let pooling = MapPooling(rawValue: pooling) else { throw ValidationError("unknown --pooling '\(self.pooling)'; use max or mean") }
            guard size >= 1, overviewSize >= 1 else { throw ValidationError("--size and --overview-size must be at least 1") }
            guard decades.isFinite, decades > 0 else { throw ValidationError("--decades must be > 0") }
            let layer = try CalibrationLayer.load(folder: self.layer, values: true, bf16: bf16)
            let problem = try layer.problem()
            let plan = try patternOptions.plan(heads: problem.headsQ, config: config, layer: layerIndex, layerFlag: "--layer-index",
                                               missingLayer: "--config needs --layer-index L (the config layer that --layer holds)",
                                               missingPattern: "give --config FILE --layer-index L, or --pattern P")
            let pictured = try heads.map { try SearchCommand.list($0, flag: "--heads", minimum: 0) } ?? Array(0..<problem.headsQ)
            if let bad = pictured.first(where: { $0 >= problem.headsQ }) {
                throw ValidationError("--heads: head \(bad) outside 0..<\(problem.headsQ)")
            }
            do { try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true) } catch {
                throw ValidationError("cannot use --out-dir \(outDir): it is not a folder that can be created or written")
            }

            let context = try deviceOptions.openContext()
            let inspection = try LayerInspection(engine: AttentionEngine(context: context), layer: layer, plan: plan, cells: size,
                                                 pooling: pooling) { Terminal.progress("inspect: \($0)") }
            Terminal.progress("inspect: pictures")
            let cells = inspection.cells
            for h in pictured {
                let head = inspection.heads[h]
                try PNGFile.write(AttentionPicture.head(map: head.map, coverage: head.coverage, cells: cells, decades: decades),
                                  to: outDir + "/head\(h).png")
            }
            let overview = AttentionPicture.overview(maps: inspection.heads.map(\.map), coverages: inspection.heads.map(\.coverage),
                                                     cells: cells, tile: overviewSize, columns: Int(Double(problem.headsQ).squareRoot().rounded(.up)),
                                                     pooling: pooling, decades: decades)
            try PNGFile.write(overview, to: outDir + "/overview.png")
            Terminal.progress("inspect: done", done: true)
            let text = """
                layer: \(self.layer)  N=\(problem.queryLength) Hq=\(problem.headsQ) Hkv=\(problem.headsKV) d=\(problem.headDim) \(problem.inputDType)
                device: \(context.device.info.name) (\(context.device.info.platformName))
                pictures: \(cells)x\(cells) cells, \(pooling.rawValue) pooling, \(Format.fixed(decades, 1)) decades
                \(inspection.table())

                """
            try SearchCommand.writeText(Array(text.utf8), to: outDir + "/summary.txt")
            print(text, terminator: "")
            print("wrote \(pictured.count) head picture(s), overview.png and summary.txt to \(outDir)")
        }
    }
}
