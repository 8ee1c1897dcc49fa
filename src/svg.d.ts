// SVG files are bundled as strings by JupyterLab's builder.
declare module '*.svg' {
  const svgstr: string;
  export default svgstr;
}
